"""What multilayer networks can represent (chapter 2).

- Linear collapse: a stack of affine layers without activations is one affine
  map, :func:`collapse_affine`; :func:`forward` runs a stack layer by layer.
- Universal approximation in one dimension, built by hand: steep sigmoid
  :func:`step` functions, :func:`bump` functions as differences of two steps,
  and :func:`staircase_network`, a one-hidden-layer sigmoid network
  ``g(x) = sum_i alpha_i sigmoid(w_i x + b_i)`` that follows a target
  function; :func:`sup_error` measures how closely.
- Depth: :func:`tent_network` composes a tent map with two ReLU units per layer
  into a sawtooth, and :func:`count_linear_pieces` counts its pieces.
- The Jacobian ``D(x) W`` of a layer ``sigma(W x + b)`` and its numerical rank:
  :func:`layer_jacobian`, :func:`numerical_rank`.

Layers act on column vectors, as in the chapter's notation: ``W_l`` has shape
``(n_l, n_{l-1})`` and a layer computes ``W_l a + b_l``. (The engine
:class:`dl_course.mlp.MLP` stores the transposes, because its rows are examples.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dl_course import activations
from dl_course._checks import as_float_array, check_int, check_real

#: Activations that :func:`forward` and :func:`layer_jacobian` accept: every entry of
#: the registry :data:`dl_course.activations.ACTIVATIONS`, ``identity`` included.
ACTIVATIONS = activations.names("numpy")


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    return activations.get(activation).function(z)


def _derivative(z: np.ndarray, activation: str) -> np.ndarray:
    """sigma'(z); ReLU's derivative at 0 is taken to be 0, as in PyTorch (chapter 3)."""
    return activations.get(activation).derivative(z)


def _check_activation(activation) -> str:
    return activations.check_name(activation, "numpy")


# -- linear collapse --------------------------------------------------------------------------


def _check_layers(weights, biases) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate a stack of affine layers: W_l of shape (n_l, n_{l-1}), b_l of shape (n_l,)."""
    for name, value in (("weights", weights), ("biases", biases)):
        if isinstance(value, np.ndarray | str | bytes) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be a list with one array per layer, got {value!r}")
    if len(weights) == 0:
        raise ValueError("weights must hold at least one layer")
    if len(biases) != len(weights):
        raise ValueError(
            f"biases must hold one vector per layer: got {len(biases)} for {len(weights)} layers"
        )
    Ws = [as_float_array(W, f"weights[{k}]", ndim=2) for k, W in enumerate(weights)]
    bs = [as_float_array(b, f"biases[{k}]", ndim=1) for k, b in enumerate(biases)]
    for k, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        if b.shape[0] != W.shape[0]:
            raise ValueError(
                f"biases[{k}] must have length {W.shape[0]} (the rows of weights[{k}]), "
                f"got {b.shape[0]}"
            )
        if k > 0 and W.shape[1] != Ws[k - 1].shape[0]:
            raise ValueError(
                f"weights[{k}] must have {Ws[k - 1].shape[0]} columns (the output size of "
                f"layer {k - 1}), got shape {W.shape}"
            )
    return Ws, bs


def collapse_affine(weights, biases) -> tuple[np.ndarray, np.ndarray]:
    """Compose the affine layers ``a -> W_l a + b_l`` (l = 1..L) into one affine map.

    Returns ``(W_tilde, b_tilde)`` with ``W_tilde = W_L ... W_2 W_1`` and
    ``b_tilde = sum_l (W_L ... W_{l+1}) b_l``, so that the stack maps ``x`` to
    ``W_tilde @ x + b_tilde``: without activations, depth adds nothing.
    Taught in chapter 2.

    Parameters
    ----------
    weights : list of arrays
        ``weights[l]`` has shape ``(n_{l+1}, n_l)``; consecutive shapes must chain.
    biases : list of arrays
        ``biases[l]`` has shape ``(n_{l+1},)``.

    Returns
    -------
    W_tilde : ndarray of shape (n_L, n_0)
    b_tilde : ndarray of shape (n_L,)

    Examples
    --------
    >>> W, b = collapse_affine([[[2.0]], [[3.0]]], [[1.0], [-1.0]])
    >>> W.tolist(), b.tolist()  # 3 (2 x + 1) - 1 = 6 x + 2
    ([[6.0]], [2.0])
    """
    Ws, bs = _check_layers(weights, biases)
    W_tilde, b_tilde = Ws[0], bs[0]
    for W, b in zip(Ws[1:], bs[1:], strict=True):
        # Applying one more layer to W~ x + b~ gives (W W~) x + (W b~ + b).
        W_tilde, b_tilde = W @ W_tilde, W @ b_tilde + b
    return W_tilde, b_tilde


def forward(weights, biases, X, activation: str = "relu") -> np.ndarray:
    """Run the rows of ``X`` through the layers ``a_l = sigma(W_l a_{l-1} + b_l)``.

    The activation is applied after every layer but the last, which is affine
    (it produces the network's output). With ``activation="identity"`` this is
    the stack that :func:`collapse_affine` collapses. Taught in chapter 2.

    Parameters
    ----------
    weights, biases : lists of arrays
        As in :func:`collapse_affine`.
    X : array of shape (n, n_0)
        Inputs, one per row.
    activation : str
        One of :data:`ACTIVATIONS` (the names of :mod:`dl_course.activations`).

    Returns
    -------
    ndarray of shape (n, n_L)
    """
    Ws, bs = _check_layers(weights, biases)
    X = as_float_array(X, "X", ndim=2)
    if X.shape[1] != Ws[0].shape[1]:
        raise ValueError(
            f"X must have {Ws[0].shape[1]} columns (the input size of layer 0), got {X.shape[1]}"
        )
    activation = _check_activation(activation)
    a = X
    for k, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        a = a @ W.T + b  # row-wise version of W a + b
        if k < len(Ws) - 1:
            a = _activate(a, activation)
    return a


# -- universal approximation in one dimension -------------------------------------------------


def _steepness(steepness) -> float:
    return check_real(steepness, "steepness", low=0.0, low_open=True)


def step(x, center: float = 0.0, steepness: float = 1.0) -> np.ndarray:
    """A smooth step ``sigmoid(steepness * (x - center))``, rising from 0 to 1 at ``center``.

    It equals 1/2 at ``center`` and rises over a width of about
    ``4 / steepness``; as ``steepness`` grows it tends to the unit step.
    Taught in chapter 2.
    """
    x = as_float_array(x, "x")
    center = check_real(center, "center")
    return activations.sigmoid(_steepness(steepness) * (x - center))


def bump(x, left: float, right: float, steepness: float = 1.0) -> np.ndarray:
    """A smooth indicator of ``[left, right]``: ``step(x, left) - step(x, right)``.

    Close to 1 inside the interval and to 0 outside, once ``steepness`` is
    large compared with ``1 / (right - left)``. Taught in chapter 2.
    """
    x = as_float_array(x, "x")
    left = check_real(left, "left")
    right = check_real(right, "right", low=left, low_open=True)
    s = _steepness(steepness)
    return activations.sigmoid(s * (x - left)) - activations.sigmoid(s * (x - right))


def _check_interval(interval) -> tuple[float, float]:
    if not isinstance(interval, Sequence) or isinstance(interval, str) or len(interval) != 2:
        raise ValueError(f"interval must be a pair (a, b) with a < b, got {interval!r}")
    a = check_real(interval[0], "interval[0]")
    b = check_real(interval[1], "interval[1]", low=a, low_open=True)
    return a, b


def _values(f: Callable, x: np.ndarray, name: str = "f") -> np.ndarray:
    """``f(x)`` for a vectorized callable, checked to be a finite array of x's shape."""
    if not callable(f):
        raise TypeError(f"{name} must be a callable mapping an array to an array of the same shape")
    values = np.asarray(f(x), dtype=np.float64)
    if values.shape != x.shape:
        raise ValueError(
            f"{name} must be vectorized: {name}(x) for x of shape {x.shape} returned shape "
            f"{values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} returned NaN or infinite values")
    return values


@dataclass(frozen=True)
class StaircaseNetwork:
    """A one-hidden-layer sigmoid network ``g(x) = sum_i alpha[i] sigmoid(w[i] x + b[i])``.

    Built by :func:`staircase_network`: bump ``j`` is the pair of hidden units
    ``2j`` (a step up at ``edges[j]``, output weight ``+heights[j]``) and ``2j + 1``
    (a step down at ``edges[j + 1]``, output weight ``-heights[j]``).

    Attributes
    ----------
    w, b, alpha : ndarray of shape (2 n,)
        Hidden weights, hidden biases and output weights. There is no output bias.
    nodes : ndarray of shape (n,)
        Centres of the cells; the interval's ends are the first and last node.
    heights : ndarray of shape (n,)
        The target's value at each node: the height of each bump.
    edges : ndarray of shape (n + 1,)
        Cell boundaries, half a cell beyond the interval at both ends.

    Taught in chapter 2.
    """

    w: np.ndarray
    b: np.ndarray
    alpha: np.ndarray
    nodes: np.ndarray
    heights: np.ndarray
    edges: np.ndarray

    @property
    def n_hidden(self) -> int:
        """Number of hidden units (two per bump)."""
        return len(self.w)

    @property
    def steepness(self) -> float:
        """The slope of every hidden unit's sigmoid (all ``w[i]`` are equal)."""
        return float(self.w[0])

    @property
    def cell_width(self) -> float:
        """Width ``h`` of each cell: the distance between neighbouring nodes."""
        return float(self.edges[1] - self.edges[0])

    def hidden(self, x) -> np.ndarray:
        """The hidden activations ``sigmoid(w x + b)``, shape ``(len(x), n_hidden)``."""
        x = as_float_array(x, "x", ndim=1)
        return activations.sigmoid(np.outer(x, self.w) + self.b)

    def __call__(self, x) -> np.ndarray:
        """The network's output ``g(x)`` for every entry of the 1-D array ``x``."""
        return self.hidden(x) @ self.alpha

    def staircase(self, x) -> np.ndarray:
        """The limit of ``g`` for infinite steepness: the piecewise-constant staircase.

        Equals ``heights[j]`` inside cell ``j``, 0 outside all cells, and the
        average of the two neighbouring heights exactly on an edge (where each
        sigmoid is 1/2).
        """
        x = as_float_array(x, "x", ndim=1)
        steps = np.heaviside(np.subtract.outer(x, self.edges), 0.5)  # (len(x), n + 1)
        return (steps[:, :-1] - steps[:, 1:]) @ self.heights


def staircase_network(
    f: Callable[[np.ndarray], np.ndarray],
    interval: tuple[float, float],
    n_bumps: int,
    steepness: float,
) -> StaircaseNetwork:
    """Build the one-hidden-layer sigmoid network of the constructive universal-approximation proof.

    The interval ``[a, b]`` gets ``n_bumps`` equally spaced nodes
    ``x_j = a + j h`` with ``h = (b - a) / (n_bumps - 1)``, so ``a`` and ``b``
    are the first and last node. Cell ``j`` is ``[x_j - h/2, x_j + h/2]`` and
    carries a bump of height ``f(x_j)``, made of two hidden units with slope
    ``steepness``: ``f(x_j) * (sigmoid(s (x - x_j + h/2)) - sigmoid(s (x - x_j - h/2)))``.
    As ``steepness * h`` grows, the network tends to the staircase that is
    ``f(x_j)`` on cell ``j``. Taught in chapter 2.

    Parameters
    ----------
    f : callable
        The target, vectorized: ``f(x)`` for a 1-D array ``x`` returns an array of
        the same shape.
    interval : (a, b)
        The interval to approximate on, ``a < b``.
    n_bumps : int
        Number of bumps (cells), >= 2. The network has ``2 * n_bumps`` hidden units.
    steepness : float
        Slope ``s > 0`` of every hidden sigmoid (its weight ``w_i``). Each step
        rises over a width of about ``4 / s``; it should be small compared with
        ``h``, i.e. ``s * h`` of 10 or more.

    Returns
    -------
    StaircaseNetwork

    Examples
    --------
    >>> net = staircase_network(np.sin, (0.0, np.pi), n_bumps=50, steepness=500.0)
    >>> net.n_hidden
    100
    >>> bool(sup_error(np.sin, net, (0.0, np.pi)) < 0.05)
    True
    """
    a, b = _check_interval(interval)
    n_bumps = check_int(n_bumps, "n_bumps", low=2)
    s = _steepness(steepness)
    nodes = np.linspace(a, b, n_bumps)
    h = (b - a) / (n_bumps - 1)
    edges = np.linspace(a - h / 2, b + h / 2, n_bumps + 1)
    heights = _values(f, nodes)
    # Unit 2j steps up at edges[j], unit 2j + 1 steps down at edges[j + 1].
    centers = np.column_stack([edges[:-1], edges[1:]]).ravel()
    w = np.full(2 * n_bumps, s)
    alpha = np.column_stack([heights, -heights]).ravel()
    return StaircaseNetwork(
        w=w, b=-s * centers, alpha=alpha, nodes=nodes, heights=heights, edges=edges
    )


def sup_error(
    f: Callable[[np.ndarray], np.ndarray],
    g: Callable[[np.ndarray], np.ndarray],
    interval: tuple[float, float],
    n_grid: int = 10_001,
) -> float:
    """The largest ``|f(x) - g(x)|`` over ``n_grid`` equally spaced points of ``[a, b]``.

    A grid maximum is a lower bound on the true supremum; with a grid much
    finer than the features of ``f - g`` the two agree closely. Both callables
    must be vectorized. Taught in chapter 2.
    """
    a, b = _check_interval(interval)
    n_grid = check_int(n_grid, "n_grid", low=2)
    x = np.linspace(a, b, n_grid)
    return float(np.max(np.abs(_values(f, x, "f") - _values(g, x, "g"))))


# -- depth: the sawtooth ---------------------------------------------------------------------


def tent_network(depth: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weights of a ReLU network that applies the tent map ``depth`` times.

    The tent map ``t(x) = 2 relu(x) - 4 relu(x - 1/2)`` equals ``2x`` on
    ``[0, 1/2]`` and ``2 - 2x`` on ``[1/2, 1]``. Each hidden layer holds its two
    ReLU units; the next layer reads ``2 h_1 - 4 h_2``. The result, run through
    :func:`forward` with ``activation="relu"``, is a sawtooth on ``[0, 1]`` with
    ``2**depth`` linear pieces, from only ``2 * depth`` hidden units.
    Taught in chapter 2.

    Returns
    -------
    weights, biases : lists of arrays
        ``depth`` hidden layers of width 2 and an output layer of width 1.
    """
    depth = check_int(depth, "depth", low=1)
    read = np.array([[2.0, -4.0]])  # t(x) from the two units
    shift = np.array([0.0, -0.5])
    weights = [np.array([[1.0], [1.0]])] + [np.vstack([read, read])] * (depth - 1) + [read]
    biases = [shift] * depth + [np.zeros(1)]
    return [W.copy() for W in weights], [b.copy() for b in biases]


def count_linear_pieces(x, y, rtol: float = 1e-6) -> int:
    """Count the maximal linear pieces of the piecewise-linear graph through ``(x, y)``.

    Consecutive grid segments belong to the same piece when their slopes agree
    to within ``rtol`` (relative to the largest slope). A kink strictly inside a
    grid segment gives that segment an intermediate slope, so it is counted as an
    extra piece (one kink, three pieces): put grid points on the kinks when they
    are known. Taught in chapter 2.
    """
    x = as_float_array(x, "x", ndim=1)
    y = as_float_array(y, "y", ndim=1)
    if y.shape != x.shape:
        raise ValueError(f"y must have the shape of x, {x.shape}, got {y.shape}")
    if x.shape[0] < 2 or np.any(np.diff(x) <= 0):
        raise ValueError("x must hold at least two strictly increasing points")
    rtol = check_real(rtol, "rtol", low=0.0, low_open=True)
    slopes = np.diff(y) / np.diff(x)
    scale = max(float(np.max(np.abs(slopes))), 1.0)
    return 1 + int(np.count_nonzero(np.abs(np.diff(slopes)) > rtol * scale))


# -- the layer Jacobian -----------------------------------------------------------------------


def layer_jacobian(W, b, x, activation: str = "relu") -> np.ndarray:
    """The Jacobian ``D(x) W`` of the layer ``x -> sigma(W x + b)``.

    ``D(x) = diag(sigma'(W x + b))`` holds the derivative of each unit at its
    pre-activation; for ReLU it is 1 for active units and 0 for inactive ones
    (a pre-activation of exactly 0 counts as inactive, as in PyTorch).
    Taught in chapter 2.

    Parameters
    ----------
    W : array of shape (m, d)
    b : array of shape (m,)
    x : array of shape (d,) or (n, d)
        One input, or one per row.
    activation : str
        One of :data:`ACTIVATIONS` (the names of :mod:`dl_course.activations`).

    Returns
    -------
    ndarray of shape (m, d), or (n, m, d) for a batch of inputs.

    Examples
    --------
    >>> layer_jacobian([[2.0, 0.0], [0.0, 2.0], [1.0, -1.0]], [0.0, 0.0, 0.0], [1.0, 0.0])
    array([[ 2.,  0.],
           [ 0.,  0.],
           [ 1., -1.]])
    """
    (W,), (b,) = _check_layers([W], [b])
    x = as_float_array(x, "x", ndim=(1, 2))
    if x.shape[-1] != W.shape[1]:
        raise ValueError(f"x must have {W.shape[1]} entries (the columns of W), got {x.shape[-1]}")
    activation = _check_activation(activation)
    slopes = _derivative(x @ W.T + b, activation)  # (m,) or (n, m): the diagonal of D(x)
    return slopes[..., :, None] * W


def numerical_rank(J, tol: float | None = None) -> int | np.ndarray:
    """The number of singular values of ``J`` above ``tol``.

    The default ``tol`` is ``max(m, d) * eps * sigma_max`` (NumPy's choice), which
    separates true zeros from round-off. ``J`` may be a stack of shape
    ``(..., m, d)``; then one rank per matrix is returned. Taught in chapter 2.
    """
    J = as_float_array(J, "J", ndim=None)
    if J.ndim < 2:
        raise ValueError(f"J must be a matrix or a stack of matrices, got shape {J.shape}")
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0)
    rank = np.linalg.matrix_rank(J, tol=tol)
    return int(rank) if J.ndim == 2 else rank.astype(np.int64)
