"""Provider adapters of the channels capability: email over SMTP, SMS through an HTTP gateway,
and console and file adapters for development. `adapter_for(channel, settings)` picks one.

See `base` for the interface, `smtp` and `sms` for the wire formats, `local` for the
development adapters, and `recoup.channels.sinks` for local servers to test against.
"""

from recoup.channels.adapters.base import (
    CHANNELS,
    Adapter,
    Attachment,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    SendResult,
    TransientSendError,
    adapter_for,
)
from recoup.channels.adapters.local import ConsoleAdapter, FileAdapter
from recoup.channels.adapters.sms import (
    OPT_OUT_KEYWORDS,
    DeliveryReceipt,
    InboundSms,
    SmsHttpAdapter,
    is_opt_out,
    parse_delivery_receipt,
    parse_inbound_sms,
    sign,
    verify_signature,
)
from recoup.channels.adapters.smtp import SmtpAdapter, build_email, message_id

__all__ = [
    "CHANNELS",
    "OPT_OUT_KEYWORDS",
    "Adapter",
    "Attachment",
    "ConsoleAdapter",
    "DeliveryReceipt",
    "FileAdapter",
    "InboundSms",
    "OutgoingMessage",
    "PermanentSendError",
    "SendError",
    "SendResult",
    "SmsHttpAdapter",
    "SmtpAdapter",
    "TransientSendError",
    "adapter_for",
    "build_email",
    "is_opt_out",
    "message_id",
    "parse_delivery_receipt",
    "parse_inbound_sms",
    "sign",
    "verify_signature",
]
