"""Reading pickled data from the internet without running it.

A pickle is a program: the stock unpickler calls whatever global the stream names (``os.system`` included).
:class:`RestrictedUnpickler` resolves only the globals that plain data needs (numpy arrays and dtypes, builtin
containers and scalars, PIL images as pixel data) and refuses any other with :class:`PickleRefused`, naming the
global. Neither numpy nor PIL rebuilds anything from the stream's header: a stand-in takes the header and the raw
bytes, and an array is made only after its shape, dtype and byte count have been checked against
``max_elements``, so a header that claims a huge shape is refused before anything is allocated (a PIL image
comes back as its numpy array). Compressed files (zlib, gzip) are inflated with a cap.
"""

from __future__ import annotations

import io
import pickle
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from curation.core.reasons import Reason


class PickleRefused(Exception):
    """A pickle that is not read: a refused global, a bomb, or a broken stream, with its reject reason."""

    def __init__(self, reason: Reason, detail: str):
        self.reason = Reason(reason)
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}")


class _ArrayStandIn:
    """Holds what ``ndarray.__setstate__`` would get (version, shape, dtype, fortran, bytes) until checked."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: tuple[Any, ...] | None = None

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.state = state


class _PilImageStandIn:
    """Takes the place of ``PIL.Image.Image``: holds the pickled state (info, mode, size, [palette,] pixel bytes)
    until it is checked and turned into a numpy array. PIL itself is never asked to build the image."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


#: PIL modes read from a pickled image: channels and numpy dtype ("1" is bit-packed, one row at a time)
PIL_MODES = {"1": (1, np.uint8), "L": (1, np.uint8), "RGB": (3, np.uint8), "RGBA": (4, np.uint8)}


class _NdarrayName:
    """What the stream gets for ``numpy.ndarray``: a name to pass to the reconstructor, never a constructor
    (``ndarray(shape)`` would allocate whatever shape the file asks for)."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise PickleRefused(
            Reason.UNSAFE_PICKLE, "refused call of numpy.ndarray (only its reconstructor may build arrays)"
        )


_NDARRAY = _NdarrayName()


def _bytearray(source: Any = b"", *args: Any) -> bytearray:
    """``bytearray`` of given bytes or text only: ``bytearray(n)`` would allocate ``n`` bytes the file does not hold."""
    if not isinstance(source, (bytes, str)):
        raise PickleRefused(Reason.UNSAFE_PICKLE, f"refused builtins.bytearray of a {type(source).__name__}")
    return bytearray(source, *args) if isinstance(source, str) else bytearray(source)


def _load_build(self: RestrictedUnpickler) -> None:
    """``BUILD`` (set an object's state) only on what this module made for the stream: a stand-in or a fresh dtype.
    On anything else (a function or class the stream named) it would change that object for the whole process."""
    state = self.stack.pop()
    inst = self.stack[-1]
    if not isinstance(inst, (_ArrayStandIn, _PilImageStandIn, np.dtype)):
        raise PickleRefused(Reason.UNSAFE_PICKLE, f"refused to set the state of a {type(inst).__name__}")
    inst.__setstate__(state)  # type: ignore[union-attr]  # numpy's stubs leave out dtype.__setstate__


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that builds numpy arrays, dtypes and builtin containers/scalars, and nothing else.

    It is Python's pure-Python unpickler, not the C one: the C unpickler sizes its memo by the index a ``PUT``
    opcode names (a few bytes of file can ask for gigabytes), the pure one keeps a dict.
    """

    dispatch: ClassVar[dict[int, Any]] = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: _load_build}
    stack: list[Any]  # the pure unpickler's value stack (set by load(); typeshed leaves it out)

    #: numpy's array reconstructor, under its numpy 1 and numpy 2 module names
    _RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
    _FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
    _SCALAR = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
    _PLAIN: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): np.dtype,
        **{
            (mod, name): obj
            for mod in ("builtins", "__builtin__")
            for name, obj in (("set", set), ("frozenset", frozenset), ("complex", complex), ("bytearray", _bytearray))
        },
        ("collections", "OrderedDict"): OrderedDict,
        ("PIL.Image", "Image"): _PilImageStandIn,
    }

    def __init__(self, file: io.BufferedIOBase, max_elements: int, max_bytes: int):
        super().__init__(file)
        self.max_elements = max_elements
        self.max_bytes = max_bytes  # all arrays together: many headers can share one stored buffer
        self.total_bytes = 0

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._PLAIN:
            return self._PLAIN[key]
        if key in self._RECONSTRUCT:
            return self._reconstruct
        if key in self._FROMBUFFER:
            return self._frombuffer
        if key in self._SCALAR:
            return self._scalar
        if key == ("_codecs", "encode"):  # how protocol 2 writes bytes: text re-encoded as latin-1, nothing else
            return _latin1_encode
        raise PickleRefused(
            Reason.UNSAFE_PICKLE,
            f"refused global {module}.{name}: only numpy arrays, PIL images "
            "and builtin containers and scalars are allowed",
        )

    @staticmethod
    def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _ArrayStandIn:
        if subtype is not _NDARRAY:
            raise PickleRefused(Reason.UNSAFE_PICKLE, f"array reconstruction of {subtype!r} refused (only ndarray)")
        return _ArrayStandIn()

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        return self.array(shape, dtype, order == "F", buffer)

    def _scalar(self, dtype: Any, data: Any) -> Any:
        return self.array((), dtype, False, data)[()]

    def array(self, shape: Any, dtype: Any, fortran: bool, data: Any) -> np.ndarray:
        """An array from a checked header: plain dtype, a sane shape within ``max_elements``, exact byte count."""
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise PickleRefused(Reason.UNSAFE_PICKLE, f"array dtype {dtype!r} refused (objects are not data)")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape) or len(shape) > 8:
            raise PickleRefused(Reason.BAD_ANNOTATION, f"array shape {shape!r} is not a shape")
        count = 1
        for n in shape:
            count *= n
        if count > self.max_elements:
            raise PickleRefused(
                Reason.TOO_MANY_PIXELS,
                f"array header claims shape {shape} ({count} elements), more than the {self.max_elements} allowed",
            )
        raw = (
            memoryview(data).cast("B")
            if isinstance(data, (bytes, bytearray, memoryview, pickle.PickleBuffer))
            else None
        )
        if raw is None or len(raw) != count * dtype.itemsize:
            got = "no bytes" if raw is None else f"{len(raw)} bytes"
            raise PickleRefused(
                Reason.TRUNCATED,
                f"array of shape {shape} {dtype} needs {count * dtype.itemsize} bytes, the file holds {got}",
            )
        self.total_bytes += len(raw)
        if self.total_bytes > self.max_bytes:
            raise PickleRefused(Reason.TOO_MANY_PIXELS, f"the arrays add up to more than {self.max_bytes} bytes")
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()

    def pil_image(self, state: Any) -> np.ndarray:
        """A pickled PIL image as an array (H×W for ``1`` and ``L``, H×W×C otherwise), checked like an array."""
        if not isinstance(state, (list, tuple)) or len(state) not in (4, 5):
            raise PickleRefused(Reason.BAD_ANNOTATION, "PIL image without its state")
        mode, size, data = state[1], state[2], state[-1]
        if mode not in PIL_MODES:
            raise PickleRefused(
                Reason.BAD_ANNOTATION, f"PIL image mode {mode!r} is not read (only {sorted(PIL_MODES)})"
            )
        if not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(n, int) and n >= 0 for n in size)):
            raise PickleRefused(Reason.BAD_ANNOTATION, f"PIL image size {size!r} is not a size")
        (w, h), (channels, dtype) = size, PIL_MODES[mode]
        if mode == "1":
            packed = self.array((h, (w + 7) // 8), np.dtype(np.uint8), False, data)
            return np.unpackbits(packed, axis=1)[:, :w].astype(bool)
        out = self.array((h, w, channels), np.dtype(dtype), False, data)
        return out[..., 0] if channels == 1 else out

    def finish(self, obj: Any) -> Any:
        """``obj`` with every array stand-in replaced by its checked array. Each container is rebuilt once, however
        often the stream refers to it (a few bytes of pickle can describe a graph with 2**60 paths)."""
        try:
            return self._finish(obj, {})
        except RecursionError:
            raise PickleRefused(Reason.BAD_ANNOTATION, "the data is nested too deep") from None

    def _finish(self, obj: Any, done: dict[int, Any]) -> Any:
        if id(obj) in done:
            return done[id(obj)]
        out: Any
        if isinstance(obj, _ArrayStandIn):
            if not isinstance(obj.state, tuple) or len(obj.state) != 5:
                raise PickleRefused(Reason.BAD_ANNOTATION, "array without its state")
            _, shape, dtype, fortran, data = obj.state
            out = done[id(obj)] = self.array(shape, dtype, bool(fortran), data)
        elif isinstance(obj, _PilImageStandIn):
            out = done[id(obj)] = self.pil_image(obj.state)
        elif isinstance(obj, dict):
            out = done[id(obj)] = type(obj)()
            for k, v in obj.items():
                out[self._finish(k, done)] = self._finish(v, done)
        elif isinstance(obj, list):
            out = done[id(obj)] = []
            out.extend(self._finish(v, done) for v in obj)
        elif isinstance(obj, (tuple, set, frozenset)):
            out = done[id(obj)] = type(obj)(self._finish(v, done) for v in obj)
        else:
            out = obj
        return out


LATIN1_NAMES = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"})


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in LATIN1_NAMES or errors != "strict":
        raise PickleRefused(Reason.UNSAFE_PICKLE, f"refused global _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", errors)


def inflate(data: bytes, max_bytes: int, name: str) -> bytes:
    """The pickle inside ``data``: zlib (MuLAn's ``.p.zl``) or gzip by their magic bytes, else as it is; at most
    ``max_bytes`` once inflated (a compression bomb stops at the cap)."""
    if data[:2] == b"\x1f\x8b":
        inflater: Callable[[], Any] = lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)  # noqa: E731
    elif data[:1] == b"\x78":
        inflater = zlib.decompressobj
    else:
        if len(data) > max_bytes:
            raise PickleRefused(Reason.TOO_MANY_PIXELS, f"{name} is {len(data)} bytes, over the {max_bytes} cap")
        return data
    d = inflater()
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as err:
        raise PickleRefused(Reason.DECODE_ERROR, f"{name}: not a valid compressed stream ({err})") from None
    if len(out) > max_bytes:
        raise PickleRefused(Reason.TOO_MANY_PIXELS, f"{name} inflates to more than {max_bytes} bytes")
    if not d.eof:
        raise PickleRefused(Reason.TRUNCATED, f"{name}: the compressed stream ends early")
    return out


def load_restricted(path: str | Path, max_elements: int, max_bytes: int) -> Any:
    """The data of a (possibly compressed) pickle file, read by :class:`RestrictedUnpickler`.

    Raises :class:`PickleRefused` for a refused global, a bomb, or a truncated or broken stream.
    """
    p = Path(path)
    try:
        if p.stat().st_size > max_bytes:
            raise PickleRefused(
                Reason.TOO_MANY_PIXELS, f"{p.name} is {p.stat().st_size} bytes, over the {max_bytes} cap"
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        raise PickleRefused(Reason.MISSING_FILE, f"{p} does not exist") from None
    except OSError as err:  # a permission, a folder with a pickle's name, a failing disk: bad input, not a bug
        raise PickleRefused(Reason.DECODE_ERROR, f"cannot read {p}: {err.strerror or err}") from None
    data = inflate(raw, max_bytes, p.name)
    if not data:
        raise PickleRefused(Reason.EMPTY_FILE, f"{p.name} is empty")
    unpickler = RestrictedUnpickler(io.BytesIO(data), max_elements, max_bytes)
    try:
        return unpickler.finish(unpickler.load())
    except PickleRefused:
        raise
    except (EOFError, pickle.UnpicklingError) as err:
        detail = str(err) or "the stream ends early"
        reason = Reason.TRUNCATED if isinstance(err, EOFError) or "truncated" in detail else Reason.DECODE_ERROR
        raise PickleRefused(reason, f"{p.name}: {detail}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError) as err:
        raise PickleRefused(Reason.DECODE_ERROR, f"{p.name}: {type(err).__name__}: {err}") from None
