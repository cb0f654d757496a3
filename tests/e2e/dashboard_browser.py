#!/usr/bin/python3
"""The dashboard in a real headless chromium (selenium + chromedriver),
driven by tests/e2e/dashboard.sh, which started the cluster and
`plush dashboard` and passes (environment):

  DASH_URL     the URL the dashboard printed (with its token)
  PLUSH        the plush program; PROFILE its profile
  VICTIM_ID    an engine id to kill, VICTIM_PID its pid
  SHOTS        where the screenshots go (build/dashboard-shots)

Exit 0: passed; 1: failed (the reason on stderr); 77: chromium cannot
run here (the reason printed). chromedriver is started here and stopped
by its PID; it starts chromium, which driver.quit() ends.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import TimeoutException, WebDriverException
except ImportError as e:
    print(f"SKIP: python3-selenium is not installed ({e})")
    sys.exit(77)

URL = os.environ["DASH_URL"]
PLUSH = os.environ["PLUSH"]
PROFILE = os.environ["PROFILE"]
VICTIM_ID = os.environ["VICTIM_ID"]
VICTIM_PID = int(os.environ["VICTIM_PID"])
SHOTS = os.environ["SHOTS"]
parts = urllib.parse.urlsplit(URL)
HOST, PORT = parts.hostname, parts.port
TOKEN = urllib.parse.parse_qs(parts.query)["token"][0]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def raw(data, read=True):
    """Sends bytes on a fresh connection; what came back (up to 64 KiB)."""
    s = socket.create_connection((HOST, PORT), timeout=10)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while len(out) < 65536:
            try:
                b = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            out += b
        return out
    finally:
        s.close()


def upgrade(path):
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % (path, HOST, PORT)).encode()


def cluster_answers():
    r = subprocess.run([PLUSH, "--profile", PROFILE, "-e", "return 6 * 7"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and r.stdout.strip() == "42", r.stdout + r.stderr


# ---- the token: 403 and no data without it -------------------------------
base = "http://%s:%d" % (HOST, PORT)
for url in (base + "/", base + "/?token=", base + "/?token=" + "0" * len(TOKEN),
            base + "/?token=" + TOKEN[:-1], base + "/index.html"):
    code, body = http_status(url)
    if code != 403:
        fail("%s answered %d, wanted 403" % (url, code))
    if "engine" in body or "plush" in body.lower():
        fail("the 403 of %s carries data: %r" % (url, body[:200]))
code, body = http_status(URL)
if code != 200 or "<title>plush dashboard</title>" not in body:
    fail("the page with the token answered %d: %r" % (code, body[:200]))
ans = raw(upgrade("/ws?token=wrong"))
if b" 101 " in ans.split(b"\r\n")[0] or b"engines" in ans:
    fail("a WebSocket with a wrong token was accepted: %r" % ans[:200])
ans = raw(upgrade("/ws"))
if b" 101 " in ans.split(b"\r\n")[0]:
    fail("a WebSocket without a token was accepted: %r" % ans[:200])
ans = raw(upgrade("/ws?token=" + TOKEN), read=False)

# ---- the browser ----------------------------------------------------------
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
          "--disable-gpu", "--window-size=1280,900", "--no-first-run",
          "--user-data-dir=" + os.path.join(os.environ.get("HOME", "/tmp"), "chromium")):
    opts.add_argument(a)
service = Service("/usr/bin/chromedriver", log_path=os.devnull)
driver = None
try:
    try:
        driver = webdriver.Chrome(service=service, options=opts)
    except Exception as e:  # noqa: BLE001 -- any reason chromium cannot start
        print("SKIP: headless chromium cannot run here: %s" % str(e).splitlines()[0])
        sys.exit(77)
    driver.set_page_load_timeout(30)
    os.makedirs(SHOTS, exist_ok=True)

    def wait(secs, what, cond):
        def look(_):
            try:
                return cond()
            except WebDriverException:  # a row replaced while read: look again
                return False
        try:
            return WebDriverWait(driver, secs, poll_frequency=0.05).until(look)
        except TimeoutException:
            fail("%s (after %s s)" % (what, secs))

    def text(id_):
        els = driver.find_elements(By.ID, id_)
        return els[0].text if els else None

    def shot(id_, name):
        el = driver.find_element(By.ID, id_)
        driver.execute_script("arguments[0].scrollIntoView()", el)
        el.screenshot(os.path.join(SHOTS, name + ".png"))

    driver.get(URL)
    wait(30, "the page never went live", lambda: text("conn") == "live")
    n_engines = int(subprocess.run(
        [PLUSH, "--profile", PROFILE, "-e", "return #rc:ids()"],
        capture_output=True, text=True, timeout=60).stdout.strip())
    wait(30, "the engines table never showed %d engines" % n_engines,
         lambda: len(driver.find_elements(By.CSS_SELECTOR, "#engines-body tr")) == n_engines)

    # ---- a 1,000-task farm: 1,000 bars, progress to 100% ------------------
    farm = """
local lb = rc:balanced()
local ds = {}
for i = 1, 1000 do
  ds[i] = lb:async():apply(function(x)
    if x % 250 == 0 then error("boom " .. x) end
    return x
  end, i)
end
local ok = 0
for _, d in ipairs(ds) do if pcall(d.get, d) then ok = ok + 1 end end
return ok
"""
    r = subprocess.run([PLUSH, "--profile", PROFILE, "-e", farm],
                       capture_output=True, text=True, timeout=240)
    if r.returncode != 0 or r.stdout.strip() != "996":
        fail("the farm: %r %r" % (r.stdout, r.stderr))
    wait(30, "the task stream never showed 1000 tasks (shows %s)" % text("stream-count"),
         lambda: text("stream-count") == "1000")

    def farm_done():
        for tr in driver.find_elements(By.CSS_SELECTOR, "#progress-body tr"):
            if tr.get_attribute("data-percent") == "100" and \
                    tr.find_element(By.CSS_SELECTOR, "td.count").text == "1000 / 1000":
                return True
        return False
    wait(30, "no progress row reached 1000 / 1000, 100%", farm_done)
    # the 4 failures are red bars whose traceback shows on a click
    wait(30, "the failures are not in the task stream",
         lambda: len(driver.find_elements(By.CSS_SELECTOR, "#stream-svg .task-error")) == 4)
    wait(30, "a failure's message never arrived",
         lambda: driver.execute_script("return last && Object.keys(last.errors).length") == 4)
    bar = driver.find_elements(By.CSS_SELECTOR, "#stream-svg .task-error")[0]
    driver.execute_script("showError(arguments[0].dataset.id)", bar)
    detail = text("detail")
    if "boom" not in detail or "stack traceback" not in detail:
        fail("the failure's detail: %r" % detail)
    # (through wait: the table is rendered again as updates come, so a
    # cell found may be gone when read; wait looks again)
    wait(30, "the clients view does not show the dashboard's own connection",
         lambda: any(td.text.endswith("(this dashboard)") for td in
                     driver.find_elements(By.CSS_SELECTOR, "#clients-body td")))
    for view in ("engines", "stream", "progress", "throughput", "clients", "logs"):
        shot(view, view)
    driver.save_screenshot(os.path.join(SHOTS, "page.png"))

    # ---- what runs: its first line on its engine's row and its client's ---
    busy = subprocess.Popen([PLUSH, "--profile", PROFILE, "-e",
                             'rc:balanced():execute("local t = os.clock() '
                             'while os.clock() - t < 3 do end")'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        label = "local t = os.clock() while os.clock() - t < 3 do end"
        wait(30, "no engine row says what it runs",
             lambda: any(td.text.startswith(label) for td in
                         driver.find_elements(By.CSS_SELECTOR, "#engines-body td.task")))
        wait(10, "no client row says what it runs",
             lambda: any(td.text.startswith(label + " on engine ") for td in
                         driver.find_elements(By.CSS_SELECTOR, "#clients-body td.task")))
        shot("engines", "engines-running")
        shot("clients", "clients-running")
        if busy.wait(timeout=60) != 0:
            fail("the busy task failed")
    finally:
        if busy.poll() is None:
            os.kill(busy.pid, signal.SIGKILL)
            busy.wait()

    # ---- an engine killed by PID turns grey within 2 s --------------------
    os.kill(VICTIM_PID, signal.SIGKILL)
    t0 = time.monotonic()
    wait(2, "engine %s did not turn grey within 2 s of its kill" % VICTIM_ID,
         lambda: "dead" in (driver.find_element(By.ID, "engine-" + VICTIM_ID)
                            .get_attribute("class") or ""))
    print("engine %s grey after %.2f s" % (VICTIM_ID, time.monotonic() - t0))
    died = driver.find_element(By.CSS_SELECTOR, "#engine-%s td.died" % VICTIM_ID).text
    if not died:
        fail("the dead engine does not say how it died")
    shot("engines", "engines-dead")

    # ---- bad input at the server: the cluster is not touched ---------------
    raw(b"\x00\xff garbage \r\n\r\n")
    raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
    raw(b"GET /" + b"a" * 50000 + b" HTTP/1.1\r\n\r\n")
    raw(b"GET /static/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    # a WebSocket flood: 4 MiB of masked frames, nothing read back
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.sendall(upgrade("/ws?token=" + TOKEN))
    frame = bytes([0x81, 0xFE, 0x10, 0x00, 1, 2, 3, 4]) + b"x" * 4096
    try:
        for _ in range(1024):
            s.sendall(frame)
    except OSError:
        pass
    s.close()
    # a slow reader: a WebSocket that never reads while states pile up
    slow = socket.create_connection((HOST, PORT), timeout=10)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(upgrade("/ws?token=" + TOKEN))
    seen = driver.execute_script("return document.body.dataset.updated")
    for _ in range(3):  # three fresh states reach the page meanwhile
        wait(10, "the page stopped updating beside a slow reader",
             lambda: driver.execute_script("return document.body.dataset.updated") != seen)
        seen = driver.execute_script("return document.body.dataset.updated")
    ok, out = cluster_answers()
    if not ok:
        fail("the cluster does not answer after the bad input: " + out)
    slow.close()
    code, _ = http_status(URL)
    if code != 200:
        fail("the dashboard stopped serving after the bad input: %d" % code)
    seen = driver.execute_script("return document.body.dataset.updated")
    wait(10, "the page stopped updating after the bad input",
         lambda: driver.execute_script("return document.body.dataset.updated") != seen)
    print("dashboard browser test: passed")
finally:
    if driver is not None:
        driver.quit()
    if service.process is not None and service.process.poll() is None:
        os.kill(service.process.pid, signal.SIGKILL)
        service.process.wait()
