"""Load generator for edgeagent's POST /v1/ingest: N keep-alive connections (processes), each sending
arrays of B records as fast as answers come back, for S seconds. Prints records/s acknowledged
(HTTP 200 = durable under the agent's fsync policy). Usage: loadgen.py PORT SECONDS CONNS BATCH [RATE]
RATE (records/s over all connections): a steady load instead of flat out; each connection sends
its next batch on a fixed schedule (it falls behind, and the printed rate shows it, only if the
agent cannot keep up)."""
import http.client
import json
import sys
import multiprocessing
import time


def main():
    port, secs, conns, batch = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    interval = batch * conns / rate if rate > 0 else 0.0  # seconds between one connection's batches
    body = json.dumps([{"measurement": "env", "device": f"d{i % 10}", "temp": 20.5 + i % 7, "hum": 40 + i % 3,
                        "ok": True} for i in range(batch)]).encode()
    stop = time.time() + secs

    def worker(k, out):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        acked = errors = 0
        due = time.time() + interval * k / conns  # connections spread over one interval
        while time.time() < stop:
            if interval:
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                due += interval
                if time.time() >= stop:
                    break
            c.request("POST", "/v1/ingest", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                acked += batch
            else:
                errors += 1
        c.close()
        out.put((acked, errors))

    q = multiprocessing.Queue()
    t0 = time.time()
    ps = [multiprocessing.Process(target=worker, args=(k, q)) for k in range(conns)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    dt = time.time() - t0
    total = sum(a for a, _ in res)
    print(json.dumps({"records": total, "seconds": round(dt, 2), "rate": round(total / dt),
                      "errors": sum(e for _, e in res)}))


if __name__ == "__main__":
    main()
