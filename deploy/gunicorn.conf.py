"""gunicorn settings for the zmq-recorder web app behind nginx (see docs/deploying.md).

gthread workers: requests are short JSON/HTML calls plus a few long ones (PNG previews, zip
downloads streamed in pieces); threads keep a slow download from blocking other callers without
an async framework. The app keeps no state in the worker, so any number of workers is safe.
Every value can be overridden from the environment (GUNICORN_BIND, GUNICORN_WORKERS, ...).
"""

import os

wsgi_app = "recorder.web:create_app()"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8080")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A worker that stops answering its heartbeat for this long is restarted; streaming responses
# keep it alive, so this is not a limit on download length.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Behind nginx on the same host: trust its X-Forwarded-* headers (https detection for cookies).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access log to stdout (the journal under systemd, the container log in a container). Tokens
# never appear in URLs (the login link carries it in the fragment, which is never sent).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'

# gunicorn >= 24 opens a control socket at a fixed path; not needed here (older versions
# ignore the unknown name).
control_socket_disable = True
