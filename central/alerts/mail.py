"""A digest mailed through the configured relay (stdlib ``smtplib`` and ``email``)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from central.alerts.message import Digest, subject, text
from fleet.config import SmtpSettings
from fleet.errors import PermanentTransferError, TransferError, TransientTransferError


def compose(smtp: SmtpSettings, recipients: list[str], digest: Digest) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = subject(digest)
    mail["From"] = smtp.from_address
    mail["To"] = ", ".join(recipients)
    mail["Date"] = format_datetime(digest.created_at)
    # The same on every attempt: a mail client shows a resent duplicate once.
    mail["Message-ID"] = make_msgid(idstring=digest.message_id, domain="fleet-central.invalid")
    mail["X-Fleet-Alert-Id"] = digest.message_id
    mail.set_content(text(digest))
    return mail


def send(smtp: SmtpSettings, recipients: list[str], digest: Digest) -> None:
    """One attempt through the relay; 4xx and a lost connection are transient, 5xx permanent."""
    context = ssl.create_default_context(cafile=smtp.ca_bundle)
    mail = compose(smtp, recipients, digest)
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)  # raises when the relay offers no STARTTLS: never sent in clear
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username, smtp.password)
            client.send_message(mail)
    except TransferError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        error = PermanentTransferError if all(c >= 500 for c in codes) else TransientTransferError
        raise error(f"mail relay refused the recipients: {exc.recipients}") from exc
    except smtplib.SMTPResponseException as exc:
        error = PermanentTransferError if exc.smtp_code >= 500 else TransientTransferError
        raise error(f"mail relay answered {exc.smtp_code}: {exc.smtp_error!r}", status=exc.smtp_code) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentTransferError(f"mail relay: {exc}") from exc
    except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timed out, TLS failed, server gone
        raise TransientTransferError(f"mail relay unreachable: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
