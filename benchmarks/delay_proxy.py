"""A TCP proxy that holds every chunk for a while in each direction: a network delay
for the benchmarks, where ``tc netem`` is not available (no module, or not root).

Run as ``python benchmarks/delay_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS``;
it prints ``ready`` once listening. asyncio's timers have about 1 ms of resolution, so the
delay each way is at least ``DELAY_MS`` and at most about 1 ms more: the benchmark
measures the round trip it really adds (asyncpg's cached ``select 1`` with and without it).
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            due, data = await held.get()
            if not data:
                writer.close()
                return
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(forward())
    while data := await reader.read(1 << 16):
        held.put_nowait((loop.time() + delay, data))
    held.put_nowait((loop.time() + delay, b""))
    await sender


async def main(listen: int, host: str, port: int, delay_ms: float) -> None:
    delay = delay_ms / 1000

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(_pipe(client_reader, server_writer, delay), _pipe(server_reader, client_writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
