#!/usr/bin/env python3
"""Writes the Combined fixture the GoAccess comparison and weft-logs' panel tests share, and
prints the figures computed from it independently of both tools (bandwidth, unique visitors per
day, 404 hits, status counts). The log is kept gzipped in the repository:

    gzip -n -9 crates/logs/tests/fixtures/combined-goaccess.log

    python3 benches/scripts/goaccess_fixture.py crates/logs/tests/fixtures/combined-goaccess.log

Deterministic: the same file and figures on every run (a fixed linear congruential generator,
not Python's `random`, whose algorithm may change)."""

import sys

state = 20240301


def rnd(n):
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return (state >> 33) % n


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "-",
]
PATHS = ["/", "/index.html", "/about", "/blog/post-1", "/blog/post-2", "/api/items", "/api/items/42",
         "/search", "/login", "/static/app.js", "/static/style.css", "/img/logo.png", "/favicon.ico",
         "/docs/guide.pdf", "/wp-login.php", "/.env", "/admin"]
REFERERS = ["-", "-", "-", "https://www.google.com/search?q=weft", "https://news.ycombinator.com/item?id=1",
            "https://example.org/links", "http://localhost:8080/dev"]
STATUS = [200] * 14 + [301, 304, 304, 404, 404, 404, 500, 403]


def main():
    out = open(sys.argv[1], "w")
    clients = []
    for i in range(150):
        if i % 10 == 9:
            clients.append("2001:db8::%x" % (i * 7919 % 65536))
        else:
            clients.append("%d.%d.%d.%d" % (10 + i % 3, rnd(256), rnd(256), 1 + rnd(254)))
    bandwidth = 0
    visitors = {}
    status = {}
    not_found = 0
    hits = 0
    n = 3000
    base = 0
    for i in range(n):
        # Four days, mostly in time order, a request every ~115 s.
        base += rnd(230)
        day = 1 + base // 86400
        sec = base % 86400
        ip = clients[min(rnd(150), rnd(150))]
        ua = AGENTS[(clients.index(ip) + rnd(3)) % len(AGENTS)]
        path = PATHS[min(rnd(len(PATHS)), rnd(len(PATHS)))]
        if path in ("/wp-login.php", "/.env", "/admin"):
            st = 404
        else:
            st = STATUS[rnd(len(STATUS))]
        size = "-" if st == 304 or rnd(40) == 0 else str(rnd(50000))
        ref = REFERERS[rnd(len(REFERERS))]
        if i in (700, 1500, 2300):
            out.write("this line is not a request\n")
        out.write('%s - - [%02d/Mar/2024:%02d:%02d:%02d +0000] "GET %s HTTP/1.1" %d %s "%s" "%s"\n' % (
            ip, day, sec // 3600, sec // 60 % 60, sec % 60, path, st, size, ref, ua))
        hits += 1
        bandwidth += 0 if size == "-" else int(size)
        # GoAccess's unique visitor: same address, date and agent; by default it leaves 4xx
        # responses out (its --4xx-to-unique-count adds them).
        if not 400 <= st < 500:
            visitors.setdefault(day, set()).add((ip, ua))
        status[st] = status.get(st, 0) + 1
        not_found += st == 404
    print("requests", hits)
    print("bandwidth", bandwidth)
    print("visitors_total", sum(len(v) for v in visitors.values()))
    print("visitors_per_day", [(d, len(v)) for d, v in sorted(visitors.items())])
    print("not_found", not_found)
    print("status", sorted(status.items()))


main()
