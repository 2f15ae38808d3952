"""One writing run at a time on a store: a lease held as ``<root>/lease.json``.

Every command that writes a store takes the lease before it writes (ingest before it lists, score
before it plans, train only to register) and checks it is still held before each write; readers
never need it. The lock is created exclusively, so of two runs starting together exactly one gets it:

- **locally** the JSON is written to a temporary file and hard-linked to ``lease.json`` (``link``
  fails when the name exists, like ``O_CREAT | O_EXCL``, and the lock never appears half written;
  where links are unsupported, ``os.open(O_CREAT | O_EXCL)`` itself). Take-over, renewal and
  release first take a guard for the token they act on (``.lease-guard-<hash>``, made the same
  way, so one process at a time per token), check under it that the lock still names that token,
  then replace the lock by ``rename`` over it (or delete it): the name is never missing while a
  lease is held, so no run can slip in between.
- **on S3** by a conditional PUT (``If-None-Match: *``). Take-over, renewal and release are
  conditional on the ETag the run last saw (``If-Match``, PUT and DELETE), so none of them can
  overwrite or delete a lock another run wrote in between. Before its first lease in a bucket, a
  process checks that the server honours both conditions (one that ignores them would hand the
  lease out twice) and refuses with :class:`StoreError` if it does not.
- **other fsspec remotes** (no conditional writes through fsspec): best effort. Creation checks for
  the lock and writes it, then reads it back to check it names this run; two runs within one round
  trip of each other can both win.

The holder renews the lease from a background thread every third of its length (``ttl_s``). A
lease whose holder died is taken over once it has expired, or at once when the holder ran on this
host (same host name, boot and pid namespace) and its process is gone. Of several runs taking over
one lease, one wins (the guard locally, ``If-Match`` on S3) and reports it in
:attr:`StoreLease.took_over`. A holder that finds its lock gone or replaced, or that could not renew
it before it expired (stopped, suspended, cut off), reports :attr:`StoreLease.lost` and renews no more.

Clocks: ``expires_at`` is the holder's clock and is compared with the taker's, so hosts sharing a
store must agree on the time to well within a lease length (NTP does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..errors import LeaseHeld, ParameterError, StoreError
from ..uri import filesystem, is_remote
from .layout import StoreLayout

LEASE_FORMAT = 1
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_GUARD_STALE_S = 10.0  # a local guard is held for microseconds; older ones are left by a crash


@dataclass(frozen=True)
class LeaseInfo:
    """What a store's lock says: who holds the lease, and until when.

    ``holder`` is the purpose and run (``"ingest 20261201T100501Z"``); ``token`` is unique to one
    acquisition; ``scope`` is the boot and pid namespace ``pid`` belongs to (empty where unknown).
    """

    holder: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime
    ttl_s: float
    token: str
    scope: str = ""

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    def to_json(self) -> bytes:
        record = {
            "format": LEASE_FORMAT,
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "acquired_at": self.acquired_at.strftime(_TIME_FORMAT),
            "expires_at": self.expires_at.strftime(_TIME_FORMAT),
            "ttl_s": self.ttl_s,
            "token": self.token,
            "scope": self.scope,
        }
        return (json.dumps(record) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseInfo:
        """Parse a lock's bytes; raises ``ValueError`` for anything that is not one."""
        try:
            record = json.loads(data)
            return cls(
                holder=str(record["holder"]),
                host=str(record["host"]),
                pid=int(record["pid"]),
                acquired_at=_parse_time(record["acquired_at"]),
                expires_at=_parse_time(record["expires_at"]),
                ttl_s=float(record["ttl_s"]),
                token=str(record["token"]),
                scope=str(record.get("scope", "")),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            raise ValueError(f"not a lease: {error}") from error

    def describe(self) -> str:
        """One line: ``'ingest R' (pid 123 on host) since ..., expiring ...``."""
        return (
            f"{self.holder!r} (pid {self.pid} on {self.host}) since {_show_time(self.acquired_at)}, "
            f"expiring {_show_time(self.expires_at)}"
        )


class StoreLease:
    """A lease this process holds on a store, from :func:`acquire_lease`; releases on leaving ``with``.

    A background thread renews it every ``ttl_s / 3``. ``took_over`` is the lease of the dead or
    expired run it replaced, if any, for the caller to report.
    """

    def __init__(self, layout: StoreLayout, backend: _Backend, info: LeaseInfo, version: Any, *, started: float):
        self.layout = layout
        self.took_over: LeaseInfo | None = None
        self._backend = backend
        self._info = info
        self._version = version
        self._deadline = started + info.ttl_s  # monotonic; the lock says the same in wall-clock time
        self._lost = False
        self._released = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="genreflow-lease", daemon=True)
        self._thread.start()

    @property
    def info(self) -> LeaseInfo:
        """The lock as last written (``expires_at`` moves on with each renewal)."""
        return self._info

    @property
    def lost(self) -> bool:
        """True once the lease can no longer be trusted: another run replaced or removed the lock, or
        it expired before a renewal got through. Stays True; the holder must stop writing."""
        with self._lock:
            if not self._lost and not self._released and time.monotonic() >= self._deadline:
                self._lost = True
            return self._lost

    def ensure_held(self) -> None:
        """Raise :class:`StoreError` if the lease was lost (call before a step that must be exclusive)."""
        if self.lost:
            raise StoreError(
                f"{self.layout.root}: lost the lease of {self._info.holder!r} (it expired before it could be "
                "renewed, or another run took it over); stopping so two runs never write at once"
            )

    def release(self) -> bool:
        """Stop renewing and delete the lock if it still names this holder; True if it was deleted."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._released:
                return False
            self._released = True
            return self._backend.release(self._version, self._info.token)

    def __enter__(self) -> StoreLease:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.release()
        except Exception:
            if exc is None:
                raise
            # the run's own error matters more; an unreleased lock expires by itself

    def __repr__(self) -> str:
        return f"StoreLease({self.layout.root!r}, {self._info.describe()}, lost={self._lost})"

    def _renew_once(self) -> bool:
        """One renewal (the thread's); False once the lease is lost. The store is called outside the
        state lock, so :attr:`lost` answers at once even while a renewal hangs on the network."""
        with self._lock:
            if self._lost or self._released:
                return False
            started = time.monotonic()
            if started >= self._deadline:
                self._lost = True
                return False
            info, version = _renewed(self._info), self._version
        try:
            version = self._backend.renew(version, info)
        except _Lost:
            with self._lock:
                self._lost = True
            return False
        with self._lock:
            self._info, self._version, self._deadline = info, version, started + info.ttl_s
            return not self._lost

    def _renew_loop(self) -> None:
        every = self._info.ttl_s / 3
        wait = every
        while not self._stop.wait(wait):
            try:
                if not self._renew_once():
                    return
                wait = every
            except Exception:  # unreachable store, timeouts: try again soon; the deadline still holds
                wait = min(every, 1.0)


def acquire_lease(
    layout: StoreLayout, *, holder: str, wait_s: float = 0.0, ttl_s: float = 60.0, poll_s: float = 0.5
) -> StoreLease:
    """Take the store's lease for ``holder``, waiting up to ``wait_s`` seconds while another run has it.

    Parameters
    ----------
    layout : StoreLayout
        The store (local folder or ``s3://`` root; it is created if missing).
    holder : str
        The purpose and run, shown to whoever finds the store leased (``"ingest <run_id>"``).
    wait_s : float
        How long to wait for a held lease, polling every ``poll_s``; 0 fails at once.
    ttl_s : float
        The lease length: a holder that stops renewing loses the lease this long after its last renewal.

    Returns
    -------
    StoreLease
        Held and renewing; use it as a context manager. ``took_over`` names a dead run's lease it replaced.

    Raises
    ------
    LeaseHeld
        Another live run still held the lease after ``wait_s`` seconds.
    StoreError
        The lock is unreadable, or the object store ignores conditional writes.
    """
    if not holder or "\n" in holder:
        raise ParameterError(f"lease holder must be one non-empty line, got {holder!r}")
    if not ttl_s > 0 or not wait_s >= 0 or not poll_s > 0:
        raise ParameterError(f"lease needs ttl_s > 0, wait_s >= 0, poll_s > 0 (got {ttl_s}, {wait_s}, {poll_s})")
    backend = _backend(layout)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    while True:
        outcome = _attempt(backend, holder=holder, token=token, ttl_s=ttl_s)
        if isinstance(outcome, _Won):
            lease = StoreLease(layout, backend, outcome.info, outcome.version, started=outcome.started)
            lease.took_over = outcome.took_over
            return lease
        left = deadline - time.monotonic()
        if left <= 0:
            raise _held_error(layout, outcome, wait_s)
        time.sleep(min(poll_s, left))


def read_lease(layout: StoreLayout) -> LeaseInfo | None:
    """The store's lock as it is now (``None`` when no run holds it); reads only."""
    current = _backend(layout).read()
    return current[0] if current else None


def break_lease(layout: StoreLayout) -> LeaseInfo | None:
    """Remove the store's lock whoever holds it (an operator's tool); returns what it said.

    A holder that is still alive finds its lock gone at its next renewal and reports ``lost``.
    """
    return _backend(layout).remove()


# --- acquisition ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Won:
    info: LeaseInfo
    version: Any
    took_over: LeaseInfo | None
    started: float


def _attempt(backend: _Backend, *, holder: str, token: str, ttl_s: float) -> _Won | LeaseInfo | None:
    """One try: the lease won, else the live lease in the way (``None``: it kept changing under us)."""
    held = None
    for _ in range(4):
        started = time.monotonic()
        info = _new_info(holder, token, ttl_s)
        try:
            version = backend.create(info)
            return _Won(info, version, None, started)
        except FileExistsError:
            pass
        current = backend.read()
        if current is None:  # released between our create and our read
            continue
        held, version = current
        if held.token == token:  # our own create, answered with an error after a retry
            return _Won(held, version, None, started)
        if not _stale(held):
            return held
        started = time.monotonic()
        info = _new_info(holder, token, ttl_s)
        try:
            version = backend.take_over(version, info, _stale)
            return _Won(info, version, held, started)
        except _Conflict:  # another run took it over first, or it was renewed after all
            continue
    return held


def _held_error(layout: StoreLayout, held: LeaseInfo | None, wait_s: float) -> LeaseHeld:
    then = f"still held after waiting {wait_s:g} s: rerun with a longer" if wait_s else "rerun with"
    if held is None:
        return LeaseHeld(
            f"{layout.root}: the store's lease kept changing hands (runs starting or ending); {then} "
            "--wait SECONDS to wait for it"
        )
    return LeaseHeld(
        f"{layout.root}: another run is writing this store: {held.describe()} unless renewed; {then} "
        "--wait SECONDS to wait for it (the lease of a run that died is taken over once it expires)",
        holder=held,
    )


def _stale(info: LeaseInfo) -> bool:
    return info.expired() or _holder_dead(info)


def _holder_dead(info: LeaseInfo) -> bool:
    return _process_gone(info.host, info.pid, info.scope)


def _process_gone(host: str, pid: int, scope: str) -> bool:
    """True only for a process of this host's boot and pid namespace that is gone (or a zombie)."""
    if host != socket.gethostname() or scope != _process_scope() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


@functools.cache
def _process_scope() -> str:
    """This boot and pid namespace, so the same host name in another container is not taken for here."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _new_info(holder: str, token: str, ttl_s: float) -> LeaseInfo:
    now = datetime.now(UTC)
    return LeaseInfo(
        holder=holder,
        host=socket.gethostname(),
        pid=os.getpid(),
        acquired_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
        ttl_s=float(ttl_s),
        token=token,
        scope=_process_scope(),
    )


def _renewed(info: LeaseInfo) -> LeaseInfo:
    return dataclasses.replace(info, expires_at=datetime.now(UTC) + timedelta(seconds=info.ttl_s))


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _show_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- where the lock lives ---------------------------------------------------------------------------


class _Conflict(Exception):
    """The lock changed under a take-over (someone else won it, or it was renewed)."""


class _Lost(Exception):
    """The holder's lock is gone or names another run."""


class _Backend(Protocol):
    def create(self, info: LeaseInfo) -> Any: ...  # version; FileExistsError when a lock exists
    def read(self) -> tuple[LeaseInfo, Any] | None: ...
    def take_over(self, version: Any, info: LeaseInfo, stale: Callable[[LeaseInfo], bool]) -> Any: ...
    def renew(self, version: Any, info: LeaseInfo) -> Any: ...  # _Lost
    def release(self, version: Any, token: str) -> bool: ...
    def remove(self) -> LeaseInfo | None: ...


def _backend(layout: StoreLayout) -> _Backend:
    fs, path = filesystem(layout.lease, layout.storage_options)
    if not is_remote(layout.lease):
        return _LocalLock(path)
    if callable(getattr(fs, "_call_s3", None)) and "s3" in tuple(fs.protocol):
        return _S3Lock(fs, path, layout.lease)
    return _RemoteLock(fs, path, layout.lease)


class _LocalLock:
    """``lease.json`` on a local (or mounted) filesystem; a lock's version is its token.

    The name never goes missing while a lease is held: a new lock appears by ``link`` (fails when
    the name exists), and take-over and renewal replace the lock by ``rename`` over it. Those
    replacements, and release, first take a guard for the token they replace (a marker file made by
    ``link``, so one run at a time per token) and check under it that the lock still names that
    token, so no two of them interleave. A guard left by a process that died holding it (for
    microseconds) is cleared once its process is gone or it is older than ``_GUARD_STALE_S``.
    """

    def __init__(self, path: str):
        self.path = path
        self.folder = os.path.dirname(path)

    def create(self, info: LeaseInfo) -> str:
        os.makedirs(self.folder, exist_ok=True)
        self._link_new(self.path, info.to_json())
        return info.token

    def read(self) -> tuple[LeaseInfo, str] | None:
        return self._read(self.path)

    def take_over(self, version: Any, info: LeaseInfo, stale: Callable[[LeaseInfo], bool]) -> str:
        guard = self._enter_guard(version)
        if guard is None:  # another run is taking it over right now
            raise _Conflict
        try:
            current = self._read(self.path)
            if current is None or current[1] != version or not stale(current[0]):
                raise _Conflict  # taken over or released meanwhile, or renewed after all
            self._replace(info)
        finally:
            _unlink_quietly(guard)
        return info.token

    def renew(self, version: Any, info: LeaseInfo) -> str:
        guard = self._enter_guard(info.token)
        if guard is None:
            raise StoreError(f"{self.path}: another run is taking this lease over")  # settled at the next try
        try:
            current = self._read(self.path)
            if current is None or current[1] != info.token:
                raise _Lost
            self._replace(info)
        finally:
            _unlink_quietly(guard)
        return info.token

    def release(self, version: Any, token: str) -> bool:
        guard = self._enter_guard(token, patience_s=1.0)
        if guard is None:
            return False
        try:
            current = self._read(self.path)
            if current is None or current[1] != token:  # taken over: leave the new holder's lock alone
                return False
            os.unlink(self.path)
            return True
        finally:
            _unlink_quietly(guard)

    def remove(self) -> LeaseInfo | None:
        for _ in range(5):
            current = self._read(self.path)
            if current is None:
                return None
            guard = self._enter_guard(current[1], patience_s=1.0)
            if guard is None:
                continue
            try:
                if (again := self._read(self.path)) is not None and again[1] == current[1]:
                    os.unlink(self.path)
                    return current[0]
            finally:
                _unlink_quietly(guard)
        raise StoreError(f"{self.path}: the lease kept changing while it was being removed; try again")

    def _replace(self, info: LeaseInfo) -> None:
        temporary = self._private("tmp")
        try:
            with open(temporary, "xb") as handle:
                handle.write(info.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        finally:
            _unlink_quietly(temporary)

    def _enter_guard(self, token: str, *, patience_s: float = 0.0) -> str | None:
        """Take the guard for ``token``: its path, or None while another process holds it."""
        guard = os.path.join(self.folder, f".lease-guard-{hashlib.sha256(token.encode()).hexdigest()[:32]}")
        deadline = time.monotonic() + patience_s
        while True:
            mark = {"host": socket.gethostname(), "pid": os.getpid(), "scope": _process_scope()}
            mark["nonce"] = uuid.uuid4().hex  # tells this guard from a later one at the same name
            try:
                self._link_new(guard, json.dumps(mark).encode())
                return guard
            except FileExistsError:
                if self._clear_stale_guard(guard):
                    continue
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _clear_stale_guard(self, guard: str) -> bool:
        try:
            with open(guard, "rb") as handle:
                data = handle.read()
            age = time.time() - os.stat(guard).st_mtime
        except FileNotFoundError:
            return True
        try:
            mark = json.loads(data)
            dead = _process_gone(str(mark["host"]), int(mark["pid"]), str(mark["scope"]))
        except (ValueError, KeyError, TypeError):
            dead = False
        if not dead and age < _GUARD_STALE_S:
            return False
        claimed = self._private("guard")
        try:
            os.rename(guard, claimed)
        except FileNotFoundError:
            return True
        try:
            with open(claimed, "rb") as handle:
                if handle.read() != data:  # a newer guard: put it back, unless yet another appeared
                    with contextlib.suppress(FileExistsError):
                        os.link(claimed, guard)
                    return False
            return True
        finally:
            os.unlink(claimed)

    def _link_new(self, path: str, data: bytes) -> None:
        """Create ``path`` holding ``data``, whole, only if it does not exist (FileExistsError)."""
        temporary = self._private("tmp")
        try:
            with open(temporary, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise
            except OSError as error:  # a filesystem without hard links: O_EXCL (written after it appears)
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                try:
                    os.write(descriptor, data)
                finally:
                    os.close(descriptor)
        finally:
            _unlink_quietly(temporary)

    def _private(self, kind: str) -> str:
        return os.path.join(self.folder, f".lease-{uuid.uuid4().hex}.{kind}")

    @staticmethod
    def _read(path: str) -> tuple[LeaseInfo, str] | None:
        last = None
        for attempt in range(5):  # retries only matter where a lock appears before its bytes (no links)
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                return None
            try:
                info = LeaseInfo.from_json(data)
                return info, info.token
            except ValueError as error:
                last = error
            time.sleep(0.02 * (attempt + 1))
        raise StoreError(
            f"{path}: not a readable lease ({last}); if no run writes this store, remove it "
            "(genreflow.pipeline.store.lease.break_lease)"
        )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_CONDITIONS_CHECKED: set[tuple[str, str]] = set()
_CONDITIONS_LOCK = threading.Lock()


class _S3Lock:
    """``lease.json`` in an S3 bucket through s3fs; the version is the object's ETag.

    Create: ``If-None-Match: *``; take-over and renewal: PUT ``If-Match: <ETag>``; release: DELETE
    ``If-Match: <ETag>``. Each is decided by the server, so no two runs can both win.
    """

    def __init__(self, fs: Any, path: str, uri: str):
        self.fs = fs
        self.uri = uri
        self.bucket, self.key, _ = fs.split_path(path)

    def create(self, info: LeaseInfo) -> str:
        data = info.to_json()
        try:
            etag = self._put(data, IfNoneMatch="*")
        except _Conflict as error:
            raise FileExistsError(self.uri) from error
        self._check_conditions(data)
        return etag

    def read(self) -> tuple[LeaseInfo, str] | None:
        for _ in range(3):
            try:
                data, etag = self._get()
            except FileNotFoundError:
                return None
            try:
                return LeaseInfo.from_json(data), etag
            except ValueError as error:
                problem = error
        raise StoreError(
            f"{self.uri}: not a readable lease ({problem}); if no run writes this store, remove it "
            "(genreflow.pipeline.store.lease.break_lease)"
        )

    def take_over(self, version: Any, info: LeaseInfo, stale: Callable[[LeaseInfo], bool]) -> str:
        return self._put(info.to_json(), IfMatch=version)  # _Conflict when it changed since we read it

    def renew(self, version: Any, info: LeaseInfo) -> str:
        try:
            return self._put(info.to_json(), IfMatch=version)
        except _Conflict:
            pass
        current = self.read()  # a retried PUT that had landed changes the ETag but not the holder
        if current is None or current[0].token != info.token:
            raise _Lost
        try:
            return self._put(info.to_json(), IfMatch=current[1])
        except _Conflict as error:
            raise _Lost from error

    def release(self, version: Any, token: str) -> bool:
        for _ in range(3):  # read first too, in case a server ignores If-Match on DELETE
            current = self.read()
            if current is None or current[0].token != token:
                return False
            try:
                self._call("delete_object", IfMatch=current[1])
                return True
            except _Conflict:
                continue
        return False

    def remove(self) -> LeaseInfo | None:
        for _ in range(5):
            current = self.read()
            if current is None:
                return None
            try:
                self._call("delete_object", IfMatch=current[1])
                return current[0]
            except _Conflict:
                continue
        raise StoreError(f"{self.uri}: the lease kept changing while it was being removed; try again")

    def _put(self, data: bytes, **condition: str) -> str:
        return self._call("put_object", Body=data, **condition)["ETag"]

    def _call(self, method: str, **kwargs: Any) -> Any:
        _require_conditional_client(method, [name for name in kwargs if name.startswith("If")])
        try:
            return self.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)
        except FileNotFoundError as error:  # If-Match on a lock that is gone
            if any(name.startswith("If") for name in kwargs):
                raise _Conflict from error
            raise
        except FileExistsError as error:  # 412 on If-None-Match
            raise _Conflict from error
        except OSError as error:
            if error.errno in (errno.EINVAL, errno.EBUSY):  # 412 Precondition Failed, 409 concurrent write
                raise _Conflict from error
            raise
        finally:
            self.fs.invalidate_cache(f"{self.bucket}/{self.key}")

    def _get(self) -> tuple[bytes, str]:
        """Body and ETag from one GET, so the ETag is the version whose content we judge."""
        from fsspec.asyn import sync

        async def get() -> tuple[bytes, str]:
            response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            try:
                return await response["Body"].read(), response["ETag"]
            finally:
                response["Body"].close()

        return sync(self.fs.loop, get)

    def _check_conditions(self, data: bytes) -> None:
        """Once per bucket and process: the server must refuse both a second create and a stale
        If-Match (both probes rewrite our own lock unchanged if it does not)."""
        place = (json.dumps(self.fs.storage_options, sort_keys=True, default=str), self.bucket)
        with _CONDITIONS_LOCK:
            if place in _CONDITIONS_CHECKED:
                return
            ignored = []
            try:
                self._put(data, IfNoneMatch="*")
                ignored.append("If-None-Match")
            except _Conflict:
                pass
            try:
                self._put(data, IfMatch='"00000000000000000000000000000000"')
                ignored.append("If-Match")
            except _Conflict:
                pass
            if not ignored:
                _CONDITIONS_CHECKED.add(place)
                return
        with contextlib.suppress(OSError):  # the refusal below matters more
            self._call("delete_object")
        raise StoreError(
            f"{self.uri}: this object store ignores conditional writes ({', '.join(ignored)}), so it "
            "cannot keep two runs from writing the store at once; use AWS S3 or a server that honours them"
        )


@functools.cache
def _conditional_parameters(method: str) -> frozenset[str]:
    import botocore.session

    operation = {"put_object": "PutObject", "delete_object": "DeleteObject"}.get(method)
    if operation is None:
        return frozenset()
    model = botocore.session.get_session().get_service_model("s3").operation_model(operation)
    return frozenset(model.input_shape.members)


def _require_conditional_client(method: str, conditions: list[str]) -> None:
    """s3fs drops parameters its botocore does not know, which would make a conditional write plain."""
    missing = [name for name in conditions if name not in _conditional_parameters(method)]
    if missing:
        raise StoreError(
            f"this botocore cannot send {', '.join(missing)} on {method}, which the store's lease needs; "
            "upgrade botocore (and s3fs/aiobotocore)"
        )


class _RemoteLock:
    """Other fsspec remotes: no conditional writes through fsspec, so a best-effort lock (see the module)."""

    def __init__(self, fs: Any, path: str, uri: str):
        self.fs = fs
        self.path = path
        self.uri = uri

    def create(self, info: LeaseInfo) -> None:
        self.fs.pipe_file(self.path, info.to_json(), mode="create")  # exists-check then write
        current = self.read()
        if current is None or current[0].token != info.token:
            raise FileExistsError(self.uri)

    def read(self) -> tuple[LeaseInfo, None] | None:
        try:
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        try:
            return LeaseInfo.from_json(data), None
        except ValueError as error:
            raise StoreError(f"{self.uri}: not a readable lease ({error})") from error

    def take_over(self, version: Any, info: LeaseInfo, stale: Callable[[LeaseInfo], bool]) -> None:
        current = self.read()
        if current is None or not stale(current[0]):
            raise _Conflict
        self.fs.rm_file(self.path)
        try:
            self.create(info)
        except FileExistsError as error:
            raise _Conflict from error

    def renew(self, version: Any, info: LeaseInfo) -> None:
        current = self.read()
        if current is None or current[0].token != info.token:
            raise _Lost
        self.fs.pipe_file(self.path, info.to_json())

    def release(self, version: Any, token: str) -> bool:
        current = self.read()
        if current is None or current[0].token != token:
            return False
        self.fs.rm_file(self.path)
        return True

    def remove(self) -> LeaseInfo | None:
        current = self.read()
        if current is not None:
            self.fs.rm_file(self.path)
        return current[0] if current else None


__all__ = ["LeaseHeld", "LeaseInfo", "StoreLease", "acquire_lease", "break_lease", "read_lease"]
