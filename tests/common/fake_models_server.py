# A stand-in OpenAI-compatible server for the serve tests: GET /v1/models -> {"data":[{"id":"fake"}]} (and
# /health); anything else 404. argv[1] = port. Prints "fake server on PORT" once listening.
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path.rstrip("/") in ("/v1/models", "/health")
        b = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
print("fake server on", sys.argv[1], flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
