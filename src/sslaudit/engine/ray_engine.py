"""The Ray engine: the same block jobs as the local engine, distributed over a Ray cluster.

Connects to an existing cluster (`ray start --head` on one machine, `ray start --address` on the
others) — sslaudit never schedules work itself. Large shared inputs are put in the object store
once; blocks run as Ray tasks with retries, so a worker that dies mid-job costs only its blocks.
Results come back in item order, so reductions are identical to the local engine's.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Any, Callable, Iterator, Sequence

from ..errors import UserError
from ..progress import progress
from .base import Engine


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379, as printed by `ray start --head`)")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UserError(f"no Ray cluster is reachable at {address} ({e.strerror or e}); start one with `ray start --head --port {port}` or fix --address") from None


class RayEngine(Engine):
    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = 3, max_in_flight: int | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("the ray engine needs Ray: pip install 'ray[default]'") from None
        if address in (None, "", "auto"):
            raise UserError("--engine ray needs --address HOST:PORT of a running cluster (see `ray start --head`)")
        _check_reachable(address)
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
            except Exception as e:  # ConnectionError, RuntimeError … from Ray's client
                raise UserError(f"could not join the Ray cluster at {address} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        self.max_retries = max_retries
        self.address = address
        self.poll_seconds = 2.0  # how often a long wait checks that the head node still answers
        self._dead = False
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight or max(2, 2 * cpus)

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: dict | None = None, desc: str | None = None) -> Iterator[Any]:
        ray = self._ray
        task = ray.remote(max_retries=self.max_retries)(fn)
        refs = {k: ray.put(v) for k, v in (shared or {}).items()}
        pending: deque = deque()
        it = iter(items)
        bar = progress(total=len(items), desc=desc)
        try:
            for item in it:
                pending.append(task.remote(item, **refs))
                if len(pending) >= self.max_in_flight:
                    yield self._get(pending.popleft())
                    bar.update(1)
            while pending:
                yield self._get(pending.popleft())
                bar.update(1)
        finally:
            bar.close()
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort when the cluster is gone
                    pass

    def _get(self, ref):
        """The result of one task. Waits in short slices and checks between them that the head node
        still answers: when the whole cluster is gone, Ray's driver would otherwise wait a minute
        and then terminate this process with a C++ log message, losing the chance to say what to do."""
        ray = self._ray
        while True:
            try:
                return ray.get(ref, timeout=self.poll_seconds)
            except ray.exceptions.GetTimeoutError:
                if not self._head_answers():
                    self._dead = True
                    raise UserError(
                        f"the Ray cluster at {self.address} stopped answering mid-run; stages already finished are kept: restart the cluster (or use --engine local) and rerun the command to resume"
                    ) from None
            except ray.exceptions.RayTaskError as e:
                # the job's own exception: re-raise it unchanged (UserError stays a UserError)
                cause = e.as_instanceof_cause() if hasattr(e, "as_instanceof_cause") else e
                raise cause from None
            except (ray.exceptions.RayError, ConnectionError) as e:
                raise UserError(f"the Ray cluster failed mid-run ({type(e).__name__}); stages already finished are kept: rerun the command to resume") from None

    def _head_answers(self) -> bool:
        try:
            _check_reachable(self.address, timeout=2.0)
            return True
        except UserError:
            return False

    def close(self) -> None:
        # after the cluster died, ray.shutdown() would block on the unreachable head
        if self._ray.is_initialized() and not self._dead:
            self._ray.shutdown()
