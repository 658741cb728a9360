"""A TCP fault-injection proxy for real-process tests.

Put it between a client (a station, speaking HTTP through httpx) and a server (central
under uvicorn) on loopback, then break the link on purpose, at run time, from ordinary
synchronous test code::

    with FaultProxy("127.0.0.1", central_port) as proxy:
        start_station(central_url=proxy.url)
        proxy.reset_after(300 * 1024)   # RST the connection carrying the 300 KiB-th byte from now
        proxy.flip_byte_at(900 * 1024)  # corrupt one bit of the byte at that offset from now
        proxy.bandwidth(256 * 1024)     # cap client->server to 256 KiB/s
        proxy.delay(1.5, direction="down")  # every reply piece arrives 1.5 s late
        proxy.stall(); ...; proxy.resume()
        proxy.refuse(); ...; proxy.accept()
        assert proxy.faults_fired ...

The proxy runs its own asyncio event loop in a daemon thread. Every setter is thread-safe
and applies to bytes not yet forwarded at the moment it returns. Byte offsets for the
one-shot faults are counted over *forwarded* bytes of one direction, across all
connections, in the order the proxy forwards them. Faults apply to the client->server
("up") direction unless ``direction="down"`` is passed.

Only the standard library is used. Connection churn (resets, EOFs, an upstream that is
down) never raises into the test and is logged at DEBUG level only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

__all__ = ["Direction", "FaultEvent", "FaultProxy"]

log = logging.getLogger(__name__)

Direction = Literal["up", "down"]
_DIRECTIONS: tuple[Direction, ...] = ("up", "down")

_READ_SIZE = 64 * 1024
_PACING_QUANTUM = 0.02  # bandwidth cap granularity: at most this many seconds' worth of bytes per write
_RST_FLUSH_TIMEOUT = 2.0  # how long a reset waits for the forwarded prefix to leave the kernel
_FLUSH_POLL = 0.002
_SHUTDOWN_TIMEOUT = 5.0
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, timeout 0: close() sends RST
_SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet sent

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class FaultEvent:
    """A one-shot fault that fired."""

    kind: Literal["reset", "flip"]
    direction: Direction
    connection: int  # 1-based number of the connection it fired on (see ``FaultProxy.connections``)
    offset: int  # offset within that connection's byte stream in ``direction``

    def __str__(self) -> str:
        what = "reset after" if self.kind == "reset" else "flipped byte at"
        return f"{what} {self.direction} offset {self.offset} on connection {self.connection}"


class _Aborted(Exception):
    """The connection was torn down on purpose; stop pumping quietly."""


def _unsent_bytes(sock) -> int:
    """Bytes the kernel still holds unsent for ``sock`` (0 when unknown)."""
    if fcntl is None or not sys.platform.startswith("linux"):
        return 0
    try:
        fd = sock.fileno()
        if fd < 0:
            return 0
        return struct.unpack("i", fcntl.ioctl(fd, _SIOCOUTQNSD, b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return 0


def _kill(writer: asyncio.StreamWriter | None, rst: bool) -> None:
    """Close a stream's transport now, discarding buffers; with ``rst`` the peer sees a TCP RST."""
    if writer is None:
        return
    transport = writer.transport
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


class _Conn:
    __slots__ = ("client", "forwarded", "id", "killed", "upstream")

    def __init__(self, conn_id: int, client: asyncio.StreamWriter) -> None:
        self.id = conn_id
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.forwarded = {"up": 0, "down": 0}
        self.killed = False

    def kill(self, rst: bool) -> None:
        self.killed = True
        _kill(self.client, rst)
        _kill(self.upstream, rst)

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None and not writer.transport.is_closing():
                writer.transport.close()


class FaultProxy:
    """TCP proxy from ``127.0.0.1:<ephemeral>`` to ``upstream_host:upstream_port`` with injectable faults.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Single use: it cannot be
    restarted after :meth:`stop`.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.listen_host = listen_host

        self._lock = threading.Lock()
        # Fault configuration (guarded by _lock).
        self._reset_in: dict[str, int | None] = {"up": None, "down": None}
        self._flip_in: dict[str, int | None] = {"up": None, "down": None}
        self._rate: dict[str, float | None] = {"up": None, "down": None}
        self._pace_clock = {"up": 0.0, "down": 0.0}
        self._delay: dict[str, float] = {"up": 0.0, "down": 0.0}
        self._stalled_until = 0.0
        self._refusing = False
        # Counters (guarded by _lock).
        self._bytes = {"up": 0, "down": 0}
        self._connections = 0
        self._active = 0
        self._refused = 0
        self._upstream_failures = 0
        self._fired: list[FaultEvent] = []

        # Loop-thread state.
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port: int | None = None
        self._stopping: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._shutting_down = False
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started (it is single use)")
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"FaultProxy->{self.upstream_host}:{self.upstream_port}"
        )
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("FaultProxy did not start within 10 s")
        if self._start_error is not None:
            self._thread.join(timeout=10)
            raise RuntimeError("FaultProxy failed to start") from self._start_error
        return self

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop and join the thread. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=_SHUTDOWN_TIMEOUT + 5)
        if thread.is_alive():
            raise RuntimeError("FaultProxy thread did not stop")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses and counters

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FaultProxy is not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.listen_host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    @property
    def bytes_up(self) -> int:
        """Client->server bytes forwarded so far (all connections)."""
        with self._lock:
            return self._bytes["up"]

    @property
    def bytes_down(self) -> int:
        """Server->client bytes forwarded so far (all connections)."""
        with self._lock:
            return self._bytes["down"]

    @property
    def connections(self) -> int:
        """Client connections accepted so far, including refused ones."""
        with self._lock:
            return self._connections

    @property
    def active_connections(self) -> int:
        with self._lock:
            return self._active

    @property
    def refused_connections(self) -> int:
        """Connections reset on arrival because of :meth:`refuse`."""
        with self._lock:
            return self._refused

    @property
    def upstream_failures(self) -> int:
        """Connections reset because the upstream could not be reached."""
        with self._lock:
            return self._upstream_failures

    @property
    def faults_fired(self) -> list[FaultEvent]:
        """One-shot faults (``reset_after``, ``flip_byte_at``) that fired, in order. A copy."""
        with self._lock:
            return list(self._fired)

    @property
    def stalled(self) -> bool:
        with self._lock:
            return self._stalled_until > time.monotonic()

    @property
    def refusing(self) -> bool:
        with self._lock:
            return self._refusing

    # ------------------------------------------------------------------ faults

    def reset_after(self, n_bytes: int, *, direction: Direction = "up") -> None:
        """Arm a one-shot reset: forward ``n_bytes`` more bytes in ``direction`` (across connections),
        then abort the connection that carried the last of them with a TCP RST towards both peers.

        The forwarded prefix is flushed to the receiving peer before the RST. ``n_bytes=0`` resets
        the next connection that has data to forward, forwarding none of it. Re-arming replaces.
        """
        _check_count(n_bytes, "n_bytes")
        _check_direction(direction)

        def apply() -> None:
            self._reset_in[direction] = n_bytes

        self._set(apply)

    def flip_byte_at(self, n: int, *, direction: Direction = "up") -> None:
        """Arm a one-shot corruption: XOR 0x01 into the byte at offset ``n`` (0-based) from now of the
        ``direction`` byte stream (across connections). ``flip_byte_at(0)`` flips the very next byte."""
        _check_count(n, "n")
        _check_direction(direction)

        def apply() -> None:
            self._flip_in[direction] = n

        self._set(apply)

    def stall(self, seconds: float | None = None) -> None:
        """Stop forwarding in both directions (data is held, nothing is dropped) for ``seconds``, or
        until :meth:`resume` when ``seconds`` is None. Connections are still accepted."""
        if seconds is not None and not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        until = math.inf if seconds is None else time.monotonic() + seconds

        def apply() -> None:
            self._stalled_until = until

        self._set(apply)

    def resume(self) -> None:
        """End a stall; held data is forwarded at once."""

        def apply() -> None:
            self._stalled_until = 0.0

        self._set(apply)

    def bandwidth(self, bytes_per_s: float | None, *, direction: Direction = "up") -> None:
        """Cap ``direction`` (aggregate over all connections) to ``bytes_per_s``; None removes the cap."""
        if bytes_per_s is not None and not bytes_per_s > 0:
            raise ValueError(f"bytes_per_s must be > 0 or None, got {bytes_per_s!r}")
        _check_direction(direction)

        def apply() -> None:
            self._rate[direction] = None if bytes_per_s is None else float(bytes_per_s)
            self._pace_clock[direction] = 0.0

        self._set(apply)

    def delay(self, seconds: float | None, *, direction: Direction = "up") -> None:
        """Hold each piece of ``direction`` for ``seconds`` before forwarding it (latency, per
        connection, order kept); None or 0 removes it. A piece held when its connection is reset
        (``refuse``) is never forwarded."""
        if seconds is not None and seconds < 0:
            raise ValueError(f"seconds must be >= 0 or None, got {seconds!r}")
        _check_direction(direction)

        def apply() -> None:
            self._delay[direction] = float(seconds or 0.0)

        self._set(apply)

    def refuse(self) -> None:
        """Simulate the server being down: reset every open connection now, and reset each new one as
        soon as it is accepted, until :meth:`accept`. When this returns, the RSTs have been sent."""

        def apply() -> None:
            self._refusing = True

        self._set(apply)
        self._call_in_loop(self._kill_all)

    def accept(self) -> None:
        """Stop refusing: new connections are proxied again."""

        def apply() -> None:
            self._refusing = False

        self._set(apply)

    def clear(self) -> None:
        """Disarm every fault: no pending reset/flip, no caps, no stall, accepting."""

        def apply() -> None:
            for d in _DIRECTIONS:
                self._reset_in[d] = self._flip_in[d] = self._rate[d] = None
                self._delay[d] = 0.0
            self._stalled_until = 0.0
            self._refusing = False

        self._set(apply)

    # ------------------------------------------------------------------ cross-thread plumbing

    def _set(self, apply) -> None:
        with self._lock:
            apply()
        self._notify()

    def _notify(self) -> None:
        """Wake every pump waiting on a stall or a bandwidth cap so it re-reads the configuration."""
        loop = self._loop
        if loop is None:
            return
        if self._in_loop_thread():
            self._on_change()
            return
        with contextlib.suppress(RuntimeError):  # loop closed under us: nothing is waiting
            loop.call_soon_threadsafe(self._on_change)

    def _on_change(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        if old is not None:
            old.set()

    def _in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _call_in_loop(self, fn) -> None:
        """Run ``fn`` on the loop and return once the transports it aborted are closed."""
        loop = self._loop
        if loop is None:
            return
        if self._in_loop_thread():
            fn()
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                # Aborted transports close their sockets in callbacks scheduled by abort();
                # a callback scheduled now runs after those.
                loop.call_soon(done.set)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:
            return
        done.wait(timeout=5)

    # ------------------------------------------------------------------ loop thread

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported through start()
            if not self._ready.is_set():
                self._start_error = exc
                self._ready.set()
            else:
                log.debug("FaultProxy loop ended with an error", exc_info=True)
        finally:
            self._loop = None

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_exception_handler)
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.listen_host, 0, backlog=512)
        self._port = server.sockets[0].getsockname()[1]
        self._loop = loop
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown(server)

    async def _shutdown(self, server: asyncio.AbstractServer) -> None:
        self._shutting_down = True
        server.close()
        self._kill_all(rst=False)
        self._on_change()
        for task in list(self._tasks):
            task.cancel()
        # Handlers not started yet (and the server's internal accept steps) see _shutting_down and
        # close their transports themselves; wait for them rather than cancelling them unstarted.
        current = asyncio.current_task()
        deadline = time.monotonic() + _SHUTDOWN_TIMEOUT
        while others := asyncio.all_tasks() - {current}:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)
                break
            await asyncio.wait(others, timeout=remaining)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await server.wait_closed()

    def _kill_all(self, rst: bool = True) -> None:
        for conn in list(self._conns):
            conn.kill(rst)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            _kill(writer, rst=False)
            if not self._shutting_down:
                raise
            # Cancelled by our own shutdown: end quietly (the task's done-callback would log otherwise).
        except Exception:  # noqa: BLE001 - never let connection churn escape
            log.debug("FaultProxy connection handler failed", exc_info=True)
            _kill(writer, rst=True)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._shutting_down:
            _kill(writer, rst=False)
            return
        with self._lock:
            self._connections += 1
            conn_id = self._connections
            refusing = self._refusing
            if refusing:
                self._refused += 1
        if refusing:
            _kill(writer, rst=True)
            return
        conn = _Conn(conn_id, writer)
        self._conns.add(conn)
        with self._lock:
            self._active += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            except OSError:
                with self._lock:
                    self._upstream_failures += 1
                log.debug("FaultProxy connection %d: upstream unreachable", conn_id, exc_info=True)
                conn.kill(rst=True)
                return
            conn.upstream = up_writer
            if conn.killed or self.refusing:  # refuse() or stop() ran while connecting
                conn.kill(rst=not self._shutting_down)
                return
            await asyncio.gather(self._pump(conn, reader, "up"), self._pump(conn, up_reader, "down"))
        except asyncio.CancelledError:
            conn.kill(rst=False)
            raise
        finally:
            conn.close()
            self._conns.discard(conn)
            with self._lock:
                self._active -= 1

    async def _pump(self, conn: _Conn, reader: asyncio.StreamReader, direction: Direction) -> None:
        dest = conn.upstream if direction == "up" else conn.client
        assert dest is not None
        try:
            while data := await reader.read(_READ_SIZE):
                await self._forward(conn, direction, data, dest)
            # Clean EOF from the source: pass the half-close on.
            if not dest.transport.is_closing() and dest.can_write_eof():
                dest.write_eof()
        except _Aborted:
            pass
        except (OSError, RuntimeError):  # ConnectionResetError, BrokenPipeError, ... : propagate as RST
            log.debug("FaultProxy connection %d %s: %s", conn.id, direction, sys.exc_info()[1])
            conn.kill(rst=True)

    async def _forward(self, conn: _Conn, direction: Direction, data: bytes, dest: asyncio.StreamWriter) -> None:
        with self._lock:
            delay = self._delay[direction]
        if delay:
            await asyncio.sleep(delay)
        pos = 0
        while pos < len(data):
            allowed = await self._gate(direction, len(data) - pos)
            if conn.killed or dest.transport.is_closing():
                raise _Aborted
            with self._lock:
                piece, cut = self._apply_faults(conn, direction, data[pos : pos + allowed])
            if piece:
                dest.write(piece)
            if cut:
                await self._flush(dest)
                conn.kill(rst=True)
                raise _Aborted
            await dest.drain()
            pos += allowed

    def _apply_faults(self, conn: _Conn, direction: Direction, piece: bytes) -> tuple[bytes, bool]:
        """Called with _lock held: apply armed faults to ``piece`` and count what gets forwarded."""
        cut = False
        reset_in = self._reset_in[direction]
        if reset_in is not None and reset_in <= len(piece):
            piece, cut = piece[:reset_in], True
        flip_in = self._flip_in[direction]
        if flip_in is not None:
            if flip_in < len(piece):
                corrupted = bytearray(piece)
                corrupted[flip_in] ^= 0x01
                piece = bytes(corrupted)
                self._flip_in[direction] = None
                self._fired.append(FaultEvent("flip", direction, conn.id, conn.forwarded[direction] + flip_in))
            else:
                self._flip_in[direction] = flip_in - len(piece)
        if cut:
            self._reset_in[direction] = None
            self._fired.append(FaultEvent("reset", direction, conn.id, conn.forwarded[direction] + len(piece)))
        elif reset_in is not None:
            self._reset_in[direction] = reset_in - len(piece)
        conn.forwarded[direction] += len(piece)
        self._bytes[direction] += len(piece)
        return piece, cut

    async def _gate(self, direction: Direction, want: int) -> int:
        """Wait while stalled or paced; return how many of ``want`` bytes may be forwarded now."""
        while True:
            if self._shutting_down:
                raise _Aborted
            with self._lock:
                now = time.monotonic()
                if self._stalled_until > now:
                    wait = self._stalled_until - now
                else:
                    rate = self._rate[direction]
                    if rate is None:
                        return want
                    clock = self._pace_clock[direction]
                    if clock <= now:
                        allowed = max(1, min(want, int(rate * _PACING_QUANTUM)))
                        # Catch up on timer lateness, but never bank more than one quantum.
                        self._pace_clock[direction] = max(clock, now - _PACING_QUANTUM) + allowed / rate
                        return allowed
                    wait = clock - now
            changed = self._changed
            assert changed is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(wait) else wait):
                    await changed.wait()

    async def _flush(self, dest: asyncio.StreamWriter) -> None:
        """Wait (bounded) until what was written to ``dest`` has left this process and the kernel."""
        transport = dest.transport
        sock = transport.get_extra_info("socket")
        deadline = time.monotonic() + _RST_FLUSH_TIMEOUT
        while not transport.is_closing() and time.monotonic() < deadline:
            if transport.get_write_buffer_size() == 0 and (sock is None or _unsent_bytes(sock) == 0):
                return
            await asyncio.sleep(_FLUSH_POLL)


def _check_direction(direction: str) -> Direction:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    return direction


def _check_count(n: int, name: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{name} must be an int >= 0, got {n!r}")


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    log.debug("FaultProxy loop: %s", context.get("message"), exc_info=context.get("exception"))
