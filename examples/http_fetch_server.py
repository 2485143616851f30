#!/usr/bin/env python3
"""The HTTP server examples/http_fetch is tested against, on 127.0.0.1.

GET /pattern/<seed>/<size> answers with <size> bytes: the little-endian 64-bit words
(seed << 40) + 0, + 1, ... truncated to <size>, the pattern http_fetch checks byte by byte.
With --corrupt SEED, one byte in the middle of that seed's answers is wrong (the test checks that
http_fetch notices). The port is chosen by the system; the first line on stdout is "port <number>". Serves until
killed; HTTP/1.1 with keep-alive, one thread per connection.
"""
import array
import http.server
import sys


def pattern(seed, size):
    words = array.array("Q", range(seed << 40, (seed << 40) + (size + 7) // 8))
    if sys.byteorder == "big":
        words.byteswap()
    return words.tobytes()[:size]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        parts = self.path.split("/")
        try:
            if len(parts) != 4 or parts[1] != "pattern":
                raise ValueError(self.path)
            seed = int(parts[2])
            body = pattern(seed, int(parts[3]))
            if seed == corrupt and body:
                middle = len(body) // 2
                body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1:]
        except ValueError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # every transfer may connect at once
    daemon_threads = True


corrupt = int(sys.argv[2]) if len(sys.argv) == 3 and sys.argv[1] == "--corrupt" else None
server = Server(("127.0.0.1", 0), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
