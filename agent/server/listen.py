"""Listening: the socket bound before uvicorn starts (so that a port in use is one line, and
`--port 0` picks a free one), and the uvicorn server over it. Used by `visionloop serve`, the
tests and the benchmark."""

from __future__ import annotations

import socket

from visionloop.errors import VisionloopError

GRACEFUL_SHUTDOWN = 3.0  # seconds open event streams get to close on Ctrl-C


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise VisionloopError(f"--host {host}: cannot resolve it: {exc.strerror or exc}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise VisionloopError(f"{host}:{port}: cannot listen there: {exc.strerror or exc}"
                              + (" (another server? choose another --port)" if port else "")) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(asgi, log_level: str = "warning", access_log: bool = False):
    import uvicorn

    config = uvicorn.Config(asgi, log_level=log_level, access_log=access_log, lifespan="off",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN, server_header=False)
    return uvicorn.Server(config)


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
