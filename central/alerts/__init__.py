"""Alerts that need a person, pushed by central itself: a signed webhook and e-mail, per borough
and kind, one digest per destination instead of a flood (docs/alerts.md).

    conditions  what needs a person now, counted as the dashboard counts it (shared with it)
    routing     which destination wants which (kind, borough)
    digest      what a destination has not been told yet: new, worse, resolved, a daily reminder
    message     the digest as it goes out (a msgspec Struct) and as mail text
    outbox      the messages waiting to go: at least once, across crashes and replicas
    webhook     a signed POST, and how a receiver checks it
    mail        a mail through the configured relay (smtplib)
    delivery    sending what is due, with the retry policy; giving up after a bound
    service     the elected job's steps and the commands', together
    collector   the alerts and the outbox at scrape time (/metrics)
    cli         ``fleet central alerts list|test``
"""
