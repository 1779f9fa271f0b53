"""``serve --workers N``: N uvicorn worker processes, each with its own listening socket
bound with SO_REUSEPORT, so the kernel spreads connections across workers by hash.

uvicorn's own supervisor shares one socket, and whichever worker wakes first accepts
every pending connection: with a few long-lived keep-alive clients (16 in the peer
benchmark) one worker often got them all while the other idled. Each socket is also
created with protocol IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections
(uvicorn's shared socket has protocol 0, and every small response then waited ~40 ms
for a delayed ACK).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from modelswap.core.errors import InvalidInput

logger = logging.getLogger("uvicorn.error")

RESTART_PAUSE = 0.5
STOP_TIMEOUT = 15.0


def reuseport_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """The one worker's listening socket (no SO_REUSEPORT: a second server on the port
    must fail, not share it), with TCP_NODELAY; InvalidInput naming a taken address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _worker(config: uvicorn.Config) -> None:
    config.configure_logging()
    sock = reuseport_socket(config.host, config.port, listen=True)
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(config: uvicorn.Config, workers: int) -> None:
    """Start ``workers`` processes, restart any that dies, stop all on SIGINT/SIGTERM."""
    if config.port == 0:
        raise InvalidInput("--workers needs an explicit --port")
    # Bound but not listening: holds the port (a clash fails here, at once) without
    # taking a share of the connections.
    try:
        guard = reuseport_socket(config.host, config.port, listen=False)
    except OSError as exc:
        raise InvalidInput(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(config,), daemon=False)
        process.start()
        return process

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    logger.info("started %d workers on %s:%d (SO_REUSEPORT)", workers, config.host, config.port)
    try:
        while not stop.wait(RESTART_PAUSE):
            for i, process in enumerate(processes):
                if not process.is_alive():
                    logger.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
                    processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes in-flight requests
        for process in processes:
            process.join(STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        guard.close()
