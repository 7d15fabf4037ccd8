"""A TCP proxy that holds every chunk for a while in each direction: a network delay
for the benchmarks, where ``tc netem`` is not available (no module, or not root).

Run as ``python benchmarks/delay_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS``;
it prints ``ready`` once listening. Each direction is a reader thread stamping what
arrives and a writer thread sending it once its time has come (``time.sleep`` is precise
to tens of microseconds, where an event loop's timers round up to whole milliseconds),
so every chunk arrives ``DELAY_MS`` later, in order, as over a longer wire.
"""

from __future__ import annotations

import queue
import socket
import sys
import threading
import time


def _pipe(source: socket.socket, target: socket.socket, delay: float) -> None:
    held: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def forward() -> None:
        while True:
            due, data = held.get()
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            if not data:
                target.shutdown(socket.SHUT_WR)
                return
            target.sendall(data)

    threading.Thread(target=forward, daemon=True).start()
    try:
        while data := source.recv(1 << 16):
            held.put((time.monotonic() + delay, data))
    except OSError:
        pass
    held.put((time.monotonic() + delay, b""))


def main(listen: int, host: str, port: int, delay_ms: float) -> None:
    server = socket.create_server(("127.0.0.1", listen))
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((host, port))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(source, target, delay_ms / 1000), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
