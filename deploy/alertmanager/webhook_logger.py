"""A webhook receiver for Alertmanager that writes each notification to stdout as one JSON line.

The compose stack's stand-in for a pager (``docker compose logs alert-webhook`` shows what would have paged whom),
and the receiver the end-to-end alerting test runs. Standard library only, so it runs in a bare python image.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class NotificationHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            notification = json.loads(body)
        except ValueError:
            self.send_error(400, "expected Alertmanager's JSON notification")
            return
        # The path names the receiver (/pager, /team, /watchdog in deploy/alertmanager/alertmanager.yml).
        sys.stdout.write(json.dumps({"path": self.path, "notification": notification}) + "\n")
        sys.stdout.flush()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Only notifications go to stdout; request lines would drown them."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")  # inside a container: compose publishes the port
    parser.add_argument("--port", type=int, default=9095)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), NotificationHandler).serve_forever()


if __name__ == "__main__":
    main()
