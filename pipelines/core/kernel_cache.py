"""Compiled numba kernels as a product of installation, not of each process's first call.

Every numba kernel of Sift (SlimPajama dedup's `dedup/kernels/`, the core's `hashing_numba.py`, R2D2
containment's `kernels_numba.py`) is declared with `kernel(...)` instead of `numba.njit(cache=True)`. Its machine
code is cached in a package-owned folder, `_kernel_cache/` next to this module (or `$SIFT_KERNEL_CACHE`), which
`sift compile` fills once per installation or cluster image (`sift.pipelines.compile`). Why not numba's own cache:

- numba's default cache lives in the source's `__pycache__` when that is writable, else in `$NUMBA_CACHE_DIR` or
  the per-user cache folder, under a name derived from the source's absolute path (empty in every fresh container,
  so every Spark executor's Python worker compiled again); older numba releases also key the index on the source
  file's mtime, which wheel installs and image copies change. And a process only caches the argument types it met:
  the driver's cache lacks the read-only arrays of Spark's immutable Arrow batches, which `sift compile` covers.
- Here the index is stamped with the content hash of all kernel modules together (`KERNEL_MODULES`): a copied
  installation loads the same entries, and a change to any kernel module (numba's index only hashes the calling
  function's own file, not the callees it inlines from other modules) recompiles all.
- The package folder is read when it is read-only too (an image whose site-packages belong to root). A signature
  missing there is compiled and saved to the package folder when it is writable, else to numba's normal cache
  (`$NUMBA_CACHE_DIR`, the source's `__pycache__`, or the per-user cache), and read back from there next time.
- numba's index key still includes the CPU model and features (`codegen.magic_tuple()`): an image compiled on
  another CPU model than the executors' falls back to compiling once per worker.

This relies on numba internals (`numba.core.caching`: `FunctionCache`, `CacheImpl`, `_CacheLocator`,
`IndexDataCacheFile`, and a dispatcher's `_cache` attribute), which numba does not promise to keep. `check_numba`
verifies them: `sift compile` fails with a clear message when they changed, and the kernels then fall back to
numba's own `cache=True` (with a warning) instead of failing. tests/test_compile.py pins the behaviour (a copied
installation loads every kernel without compiling).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba as nb

# Every module declaring kernels, in dotted form. Their contents together stamp the cache (see the docstring);
# `kernel` refuses a function from a module missing here.
KERNEL_MODULES = (
    "sift.pipelines.core.hashing_numba",
    "sift.dedup.kernels.hashing",
    "sift.dedup.kernels.normalise",
    "sift.dedup.kernels.shingles",
    "sift.dedup.kernels.signatures",
    "sift.dedup.kernels.jaccard",
    "sift.dedup.kernels.survivors",
    "sift.dedup.containment.kernels_numba",
)

_SIFT_ROOT = Path(__file__).parents[2]  # the `sift` package folder (pipelines/core/ is two below it)
_DISPATCHERS: list[Any] = []
_STAMP: str | None = None
_NUMBA_PROBLEM: str | None = None


class NumbaInternalsChanged(RuntimeError):
    """numba no longer has the caching internals the package-owned kernel cache is built on."""


def cache_dir() -> Path:
    """The package-owned folder of compiled kernels (`$SIFT_KERNEL_CACHE` overrides it)."""
    override = os.environ.get("SIFT_KERNEL_CACHE")
    return Path(override) if override else Path(__file__).parent / "_kernel_cache"


def _module_file(module: str) -> Path:
    """Source file of a dotted module under `sift`, found from this file's place (no import: the modules are
    being imported when their kernels are declared)."""
    parts = module.split(".")[1:]
    return _SIFT_ROOT.joinpath(*parts[:-1], parts[-1] + ".py")


def source_stamp() -> str:
    """Content hash of every kernel module together, with numba's version."""
    global _STAMP
    if _STAMP is None:
        h = hashlib.sha256(nb.__version__.encode())
        for module in KERNEL_MODULES:
            h.update(module.encode())
            h.update(_module_file(module).read_bytes())
        _STAMP = h.hexdigest()
    return _STAMP


def check_numba() -> None:
    """Raise `NumbaInternalsChanged` when numba's caching internals this module uses are not there any more."""
    if _NUMBA_PROBLEM is not None:
        raise NumbaInternalsChanged(_NUMBA_PROBLEM)


def _probe_numba() -> str | None:
    try:
        from numba.core import caching

        needed = {
            "FunctionCache": ("_impl_class", "load_overload", "save_overload", "_index_key"),
            "CompileResultCacheImpl": ("_locator_classes", "locator", "filename_base"),
            "_CacheLocator": ("ensure_cache_path", "get_cache_path", "get_source_stamp", "get_disambiguator"),
            "IndexDataCacheFile": ("load", "save", "_load_index"),
        }
        for name, attrs in needed.items():
            cls = getattr(caching, name)
            for attr in attrs:
                if not hasattr(cls, attr):
                    raise AttributeError(f"numba.core.caching.{name}.{attr}")
        if not hasattr(nb.njit(lambda x: x), "_cache"):
            raise AttributeError("numba's dispatcher has no _cache")
    except (ImportError, AttributeError) as exc:
        return (
            f"numba {nb.__version__} changed the caching internals Sift's compiled-kernel cache uses ({exc}); "
            "pin numba to a version Sift supports (see pyproject.toml) or update sift.pipelines.core.kernel_cache"
        )
    return None


_NUMBA_PROBLEM = _probe_numba()

if _NUMBA_PROBLEM is None:
    from numba.core.caching import CompileResultCacheImpl, FunctionCache, NullCache, _CacheLocator

    class PackageLocator(_CacheLocator):
        """The package-owned cache folder, one subfolder per kernel module; stamped with `source_stamp`. Used
        whether or not it is writable (`KernelCache` decides where a new entry goes)."""

        def __init__(self, py_func: Callable[..., Any], py_file: str) -> None:
            self._lineno = py_func.__code__.co_firstlineno
            self._path = cache_dir() / py_func.__module__

        def get_cache_path(self) -> str:
            return str(self._path)

        def get_source_stamp(self) -> str:
            return source_stamp()

        def get_disambiguator(self) -> str:
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func: Callable[..., Any], py_file: str) -> PackageLocator:
            return cls(py_func, py_file)

        def writable(self) -> bool:
            try:
                self.ensure_cache_path()
            except OSError:
                return False
            return True

    class _PackageImpl(CompileResultCacheImpl):
        _locator_classes = [PackageLocator]

    class _PackageCache(FunctionCache):
        _impl_class = _PackageImpl

    class KernelCache(FunctionCache):
        """The package cache first, numba's normal cache (its locator chain) for what is missing there."""

        def __init__(self, py_func: Callable[..., Any]) -> None:  # (FunctionCache's own __init__ not called)
            self._name = repr(py_func)
            self._py_func = py_func
            self.package = _PackageCache(py_func)
            self._fallback: Any = None
            self._enabled = True

        @property
        def cache_path(self) -> str:
            return self.package.cache_path

        def fallback(self) -> Any:
            if self._fallback is None:
                try:
                    self._fallback = FunctionCache(self._py_func)
                except RuntimeError:  # no writable locator at all
                    self._fallback = NullCache()
            return self._fallback

        def enable(self) -> None:
            self._enabled = True

        def disable(self) -> None:
            self._enabled = False

        def flush(self) -> None:
            self.package.flush()

        def load_overload(self, sig: Any, target_context: Any) -> Any:
            if not self._enabled:
                return None
            try:
                found = self.package.load_overload(sig, target_context)
            except OSError:  # an unreadable package folder: a miss
                found = None
            if found is None:
                found = self.fallback().load_overload(sig, target_context)
            return found

        def save_overload(self, sig: Any, data: Any) -> None:
            if not self._enabled:
                return
            if self.package._impl.locator.writable():
                self.package.save_overload(sig, data)
            else:
                self.fallback().save_overload(sig, data)


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """`numba.njit(**options)` with its machine code cached in the package-owned folder (see the module
    docstring); use instead of `numba.njit(cache=True)` in the modules of `KERNEL_MODULES`."""

    def wrap(fn: Callable[..., Any]) -> Any:
        if fn.__module__ not in KERNEL_MODULES:
            raise RuntimeError(f"{fn.__module__}.{fn.__qualname__}: add its module to KERNEL_MODULES")
        if _NUMBA_PROBLEM is not None:
            warnings.warn(_NUMBA_PROBLEM + "; using numba's own cache", RuntimeWarning, stacklevel=2)
            return nb.njit(cache=True, **options)(fn)
        dispatcher = nb.njit(**options)(fn)
        dispatcher._cache = KernelCache(dispatcher.py_func)
        _DISPATCHERS.append(dispatcher)
        return dispatcher

    return wrap


def dispatchers() -> list[Any]:
    """Every kernel declared so far (those of the modules imported)."""
    return list(_DISPATCHERS)
