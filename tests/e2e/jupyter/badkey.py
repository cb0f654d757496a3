"""Bad input never runs and never crashes the kernel: messages signed with
a wrong key, unsigned, malformed or not Jupyter messages at all are dropped
(one line each on the kernel's stderr); a good message is then answered.
Then the embedded cluster the kernel started is stopped with it."""
import json
import os
import sys
import time

import zmq
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

log_path, marker = sys.argv[1], sys.argv[2]
log = open(log_path, "w")
km = KernelManager(kernel_name="plush")
km.start_kernel(stderr=log)
failures = []
try:
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    info = km.get_connection_info()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect("tcp://%s:%d" % (info["ip"], info["shell_port"]))
    code = "io.open(%r, 'w'):write('ran'):close()" % marker
    content = {"code": code, "silent": False, "store_history": True,
               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
    wrong = Session(key=b"not-the-key", signature_scheme="hmac-sha256")
    wrong.send(sock, "execute_request", content)
    unsigned = Session(key=b"", signature_scheme="hmac-sha256")
    unsigned.send(sock, "execute_request", content)
    good = Session(key=km.session.key, signature_scheme="hmac-sha256")
    # signed, but not JSON; signed, JSON but no msg_type; not Jupyter at all
    h, p, m, c = b"{not json", b"{}", b"{}", json.dumps(content).encode()
    sock.send_multipart([b"<IDS|MSG>", good.sign([h, p, m, c]), h, p, m, c])
    h = b'{"msg_id": "x"}'
    sock.send_multipart([b"<IDS|MSG>", good.sign([h, p, m, c]), h, p, m, c])
    sock.send_multipart([b"garbage"])
    sock.send_multipart([b"<IDS|MSG>", b"short"])
    # signed and well formed, but code is not a string: an error reply
    good.send(sock, "execute_request", dict(content, code=42, stop_on_error=False))
    if not sock.poll(60000):
        failures.append("no reply to code = 42")
    else:
        msg = good.deserialize(good.feed_identities(sock.recv_multipart())[1])
        if (msg["content"]["status"], msg["content"]["ename"]) != ("error", "BadRequest"):
            failures.append("code = 42 answered: %r" % msg["content"])
    # then a good one: answered, so the bad ones before it were dropped
    good.send(sock, "execute_request", dict(content, code="#rc:ids() > 0"))
    if not sock.poll(60000):
        failures.append("no reply to the good request")
    else:
        msg = good.deserialize(good.feed_identities(sock.recv_multipart())[1])
        if msg["content"]["status"] != "ok" or msg["content"]["execution_count"] != 1:
            failures.append("the good request's reply: %r" % msg["content"])
    if os.path.exists(marker):
        failures.append("a message with a wrong key or no signature was executed")
    run = os.environ["XDG_RUNTIME_DIR"] + "/plush/embedded-%d.json" % km.provisioner.pid
    with open(run) as f:
        controller = json.load(f)["pid"]
    sock.close(0)
    kc.stop_channels()
finally:
    km.shutdown_kernel()
    log.close()

deadline = time.time() + 20
while os.path.exists("/proc/%d" % controller) and time.time() < deadline:
    time.sleep(0.05)
if os.path.exists("/proc/%d" % controller):
    os.kill(controller, 9)
    failures.append("the embedded controller outlived the kernel")
text = open(log_path).read()
for why in ["dropped a message with a bad signature", "dropped an unsigned message",
            "dropped a malformed message (header or content is not a JSON object)",
            "dropped a message that is not Jupyter's (no <IDS|MSG> delimiter)",
            "dropped a message with missing parts"]:
    if ("plush kernel: " + why) not in text:
        failures.append("no log line %r in:\n%s" % (why, text))
if text.count("plush kernel: dropped a malformed message") != 2:
    failures.append("two malformed messages, logged: %s" % text)
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("bad messages: dropped, logged, never run; the kernel answered after them")
