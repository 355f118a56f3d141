"""Attribution maps, Grad-CAM, feature visualization and probes (chapter 22).

Every function here *looks at* a trained torch classifier and changes nothing:

- the model runs in eval mode and its mode is restored afterwards;
- the parameters and their ``.grad`` are left exactly as they were (input
  gradients are taken with :func:`torch.autograd.grad`, which accumulates nothing);
- the caller's input tensor is neither modified nor marked ``requires_grad``;
  results are new tensors without a graph.

Attributions are batched: one backward pass serves a whole batch (the examples of
a batch do not interact in eval mode, so the gradient of the summed target scores
with respect to the batch holds every example's own gradient), and
:func:`integrated_gradients` stacks all interpolants of all examples into one batch.

The module is torch-only by nature; torch (and scikit-learn, for the probes) are
imported inside the functions so that ``import dl_course.interpretability`` stays cheap.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from dl_course._checks import (
    as_float_array,
    as_labels,
    check_bool,
    check_float_tensor,
    check_int,
    check_module,
    check_real,
    check_seed,
)
from dl_course._threads import limited_threads

#: Quadrature rules of :func:`integrated_gradients`, as positions in each of the ``steps`` cells.
RULES = {"left": 0.0, "midpoint": 0.5, "right": 1.0}


# -- validation ---------------------------------------------------------------------------------


def _check_x(x, name: str = "x"):
    import torch

    check_float_tensor(x, name)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, ...) of inputs, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return x.detach()


def _check_target(target, n: int):
    """``target`` (an int or N integers) as a LongTensor of shape (N,)."""
    import torch

    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        if target < 0:
            raise ValueError(f"target must be a class index >= 0, got {target}")
        return torch.full((n,), int(target), dtype=torch.long)
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        target = target.long()
    else:
        target = torch.as_tensor(as_labels(target, "target", n=n))
    if target.shape != (n,):
        raise ValueError(f"target must be an int or have shape ({n},), got {tuple(target.shape)}")
    if bool((target < 0).any()):
        raise ValueError("target must hold class indices >= 0")
    return target


@contextlib.contextmanager
def _eval_mode(model):
    """Run the block with ``model`` in eval mode; restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _scores(model, x, target):
    """The target logits ``model(x)[i, target[i]]``, shape (N,)."""
    logits = model(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(
            f"model must return logits of shape (N, C) = ({x.shape[0]}, C), got {tuple(logits.shape)}"
        )
    if int(target.max()) >= logits.shape[1]:
        raise ValueError(
            f"target must be < {logits.shape[1]}, the number of classes, got {int(target.max())}"
        )
    return logits.gather(1, target[:, None]).squeeze(1)


def _input_grad(model, x, target):
    """d score_i / d x_i for every example, from one backward pass over the batch."""
    import torch

    with _eval_mode(model), torch.enable_grad():
        probe = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_scores(model, probe, target).sum(), probe)
    return grad.detach()


# -- gradient attributions ----------------------------------------------------------------------


def saliency(model, x, target, *, absolute: bool = True):
    """The saliency map of Simonyan et al.: the gradient of a class score (chapter 22).

    ``S_i = |d f_c(x_i) / d x_i|`` with ``f_c`` the logit of class ``c = target[i]``.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier mapping inputs (N, ...) to logits (N, C).
    x : torch.Tensor
        Floating-point inputs, batch axis first. Not modified.
    target : int or sequence of int
        The class whose score is explained: one for all examples, or one per example.
    absolute : bool
        Return the absolute value (the saliency of the paper) or the signed gradient.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``, without a graph. The model's mode, parameters and
        ``.grad`` are left as they were.
    """
    model = check_module(model)
    x = _check_x(x)
    target = _check_target(target, x.shape[0])
    absolute = check_bool(absolute, "absolute")
    grad = _input_grad(model, x, target)
    return grad.abs() if absolute else grad


def gradient_x_input(model, x, target):
    """Gradient times input, ``x_i * d f_c(x_i) / d x_i`` (chapter 22).

    For a linear model ``f_c(x) = w_c @ x`` it is the exact split of the score
    into per-feature contributions ``w_cj x_j``. Arguments as for :func:`saliency`.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``, without a graph.
    """
    model = check_module(model)
    x = _check_x(x)
    target = _check_target(target, x.shape[0])
    return x * _input_grad(model, x, target)


def integrated_gradients(
    model,
    x,
    target,
    *,
    baseline=None,
    steps: int = 64,
    rule: str = "midpoint",
    return_gap: bool = False,
):
    """Integrated gradients of Sundararajan et al. (chapter 22).

    ``IG_j(x) = (x_j - b_j) * integral_0^1 d f_c(b + t (x - b)) / d x_j dt``,
    the integral approximated by a Riemann sum over ``steps`` points. By the
    fundamental theorem of calculus the attributions sum to ``f_c(x) - f_c(b)``
    (completeness), up to the quadrature error.

    Parameters
    ----------
    model, x, target
        As for :func:`saliency`.
    baseline : torch.Tensor, optional
        The reference input ``b``: same shape as ``x``, or as one example (broadcast).
        Default: all zeros (a black image).
    steps : int
        Number of interpolation points, >= 1. All ``steps * N`` interpolants
        go through the model as one batch.
    rule : {"midpoint", "left", "right"}
        Where in each of the ``steps`` equal cells of [0, 1] the gradient is taken.
    return_gap : bool
        Also return the completeness gap ``sum_j IG_j - (f_c(x) - f_c(b))``, shape (N,).

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor)
        The attributions (shape of ``x``), and the gap if asked for.
    """
    import torch

    model = check_module(model)
    x = _check_x(x)
    target = _check_target(target, x.shape[0])
    steps = check_int(steps, "steps", low=1)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")
    return_gap = check_bool(return_gap, "return_gap")
    if baseline is None:
        base = torch.zeros_like(x)
    else:
        base = _check_x(baseline[None] if baseline.ndim == x.ndim - 1 else baseline, "baseline")
        if base.shape[1:] != x.shape[1:] or base.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"baseline must have shape {tuple(x.shape)} or {tuple(x.shape[1:])}, "
                f"got {tuple(baseline.shape)}"
            )
        base = base.to(x.dtype).expand_as(x)
    t = (torch.arange(steps, dtype=x.dtype) + RULES[rule]) / steps
    shape = (steps,) + (1,) * x.ndim
    path = base + t.reshape(shape) * (x - base)  # (steps, N, ...)
    grads = _input_grad(model, path.reshape(-1, *x.shape[1:]), target.repeat(steps))
    attributions = (x - base) * grads.reshape(path.shape).mean(dim=0)
    if not return_gap:
        return attributions
    with _eval_mode(model), torch.no_grad():
        change = _scores(model, x, target) - _scores(model, base, target)
    return attributions, attributions.reshape(len(x), -1).sum(dim=1) - change


# -- Grad-CAM -----------------------------------------------------------------------------------


def grad_cam(model, x, target, layer, *, relu: bool = True):
    """Grad-CAM of Selvaraju et al. for a convolutional layer (chapter 22).

    With ``A^k`` the k-th feature map of ``layer`` (output shape (N, K, h, w)),
    ``alpha_k = mean_{ij} d f_c / d A^k_{ij}`` and the map is
    ``ReLU(sum_k alpha_k A^k)``, of the layer's resolution (h, w).

    Parameters
    ----------
    model, x, target
        As for :func:`saliency`.
    layer : torch.nn.Module
        A submodule of ``model`` whose output is (N, K, h, w).
    relu : bool
        Keep only the positive part (the paper's choice) or return the signed map.

    Returns
    -------
    torch.Tensor
        Shape (N, h, w), without a graph.
    """
    import torch

    model = check_module(model)
    x = _check_x(x)
    target = _check_target(target, x.shape[0])
    if not isinstance(layer, torch.nn.Module) or not any(m is layer for m in model.modules()):
        raise ValueError("layer must be a submodule of model (for example model[2])")
    relu = check_bool(relu, "relu")
    captured = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with _eval_mode(model), torch.enable_grad():
            scores = _scores(model, x.clone(), target)
            if len(captured) != 1 or captured[0].ndim != 4:
                shapes = [tuple(c.shape) for c in captured]
                raise ValueError(f"layer must run once with a 4-D output (N, K, h, w), got {shapes}")
            features = captured[0]
            (grad,) = torch.autograd.grad(scores.sum(), features)
    finally:
        handle.remove()
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    cam = (alpha * features.detach()).sum(dim=1)
    return cam.clamp(min=0) if relu else cam


# -- inside the network: activations, probes, randomization -------------------------------------


def layer_outputs(model, x, layers: Mapping[str, object]) -> dict[str, np.ndarray]:
    """The outputs of named submodules on the inputs ``x``, flattened per example (chapter 22).

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor
        Inputs (N, ...).
    layers : mapping of str to torch.nn.Module
        Names and submodules of ``model`` whose outputs to record.

    Returns
    -------
    dict of str to ndarray
        ``name -> float64 array (N, features)``, in the order of ``layers``.
    """
    import torch

    model = check_module(model)
    x = _check_x(x)
    if not isinstance(layers, Mapping) or not layers:
        raise TypeError("layers must be a non-empty mapping of names to submodules")
    members = list(model.modules())
    for name, layer in layers.items():
        if not any(m is layer for m in members):
            raise ValueError(f"layers[{name!r}] is not a submodule of model")
    out: dict[str, np.ndarray] = {}
    hooks = []
    for name, layer in layers.items():

        def record(_m, _i, output, name=name):
            out[name] = output.detach().reshape(output.shape[0], -1).double().numpy()

        hooks.append(layer.register_forward_hook(record))
    try:
        with _eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: out[name] for name in layers}


def probe_accuracy(
    train_features, y_train, test_features, y_test, *, C: float = 1.0, max_iter: int = 2000
) -> float:
    """Test accuracy of a linear probe: logistic regression on frozen features (chapter 22).

    Features are standardized with the training set's mean and standard deviation,
    then scikit-learn's ``LogisticRegression`` (multinomial, L2 penalty of inverse
    strength ``C``, lbfgs) is fitted on the training features.

    Parameters
    ----------
    train_features, test_features : arrays (n_train, d) and (n_test, d)
    y_train, y_test : integer labels
    C : float
        Inverse regularization strength, > 0.
    max_iter : int
        Iterations of lbfgs, >= 1.

    Returns
    -------
    float
        The fraction of test examples the probe classifies correctly.
    """
    from sklearn.linear_model import LogisticRegression

    F_train = as_float_array(train_features, "train_features", ndim=2)
    F_test = as_float_array(test_features, "test_features", ndim=2)
    if F_test.shape[1] != F_train.shape[1]:
        raise ValueError(
            f"test_features must have {F_train.shape[1]} columns like train_features, "
            f"got {F_test.shape[1]}"
        )
    y_train = as_labels(y_train, "y_train", n=F_train.shape[0])
    y_test = as_labels(y_test, "y_test", n=F_test.shape[0])
    C = check_real(C, "C", low=0.0, low_open=True)
    max_iter = check_int(max_iter, "max_iter", low=1)
    mean, std = F_train.mean(axis=0), F_train.std(axis=0)
    std[std == 0] = 1.0  # constant features (dead units) stay constant
    probe = LogisticRegression(C=C, max_iter=max_iter)
    # one BLAS thread for a small fit: on a busy machine several threads are ~20x slower
    with limited_threads(F_train.size * max(len(np.unique(y_train)), 2)):
        probe.fit((F_train - mean) / std, y_train)
        return float(probe.score((F_test - mean) / std, y_test))


def rank_correlation(a, b) -> np.ndarray:
    """Spearman's rank correlation between matching rows of ``a`` and ``b`` (chapter 22).

    Ties get their average rank, as in :func:`scipy.stats.spearmanr`.

    Parameters
    ----------
    a, b : arrays of shape (N, d) (or (d,)), d >= 2
        Each row is one map (flattened).

    Returns
    -------
    ndarray of shape (N,)
        One correlation per row, in [-1, 1] (NaN for a constant row).
    """
    a = as_float_array(np.asarray(a), "a", ndim=(1, 2))
    b = as_float_array(np.asarray(b), "b", ndim=(1, 2))
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape[1] < 2:
        raise ValueError(f"each row must hold at least 2 values, got {a.shape[1]}")
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(axis=1) / np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) along each row, ties sharing the mean of their positions."""
    order = np.argsort(a, axis=1, kind="stable")
    sorted_a = np.take_along_axis(a, order, axis=1)
    n = a.shape[1]
    ranks = np.empty_like(a)
    for i in range(a.shape[0]):  # per row: group the ties (vectorized inside the row)
        starts = np.r_[True, sorted_a[i, 1:] != sorted_a[i, :-1]]
        group = np.cumsum(starts) - 1
        first = np.flatnonzero(starts)
        last = np.r_[first[1:], n] - 1
        ranks[i, order[i]] = (first + last)[group] / 2 + 1
    return ranks


def randomize_layers(model, layers: Sequence[object], seed: int = 0):
    """A copy of ``model`` with the parameters of ``layers`` re-initialized (chapter 22).

    The sanity check of Adebayo et al.: an explanation that does not change when
    the weights it should depend on are replaced by random ones explains nothing
    about the trained model. Each listed layer gets its module's own
    ``reset_parameters`` initialization, drawn from a generator seeded by ``seed``;
    the original model is not touched and torch's global random state is restored.

    Parameters
    ----------
    model : torch.nn.Module
    layers : sequence of torch.nn.Module
        Submodules of ``model`` (each with a ``reset_parameters`` method).
    seed : int

    Returns
    -------
    torch.nn.Module
        The randomized copy.
    """
    import torch

    model = check_module(model)
    seed = check_seed(seed)
    if isinstance(layers, torch.nn.Module) or not isinstance(layers, Sequence):
        raise TypeError("layers must be a sequence of submodules of model")
    index = {id(m): name for name, m in model.named_modules()}
    for k, layer in enumerate(layers):
        if id(layer) not in index:
            raise ValueError(f"layers[{k}] is not a submodule of model")
        if not hasattr(layer, "reset_parameters"):
            raise ValueError(f"layers[{k}] ({type(layer).__name__}) has no reset_parameters")
    clone = copy.deepcopy(model)
    modules = dict(clone.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in layers:
            modules[index[id(layer)]].reset_parameters()
    return clone


# -- feature visualization ----------------------------------------------------------------------


def total_variation(images):
    """Anisotropic total variation of a batch of images (N, h, w): sum of |neighbour differences|."""
    return (images[:, 1:, :] - images[:, :-1, :]).abs().sum(dim=(1, 2)) + (
        images[:, :, 1:] - images[:, :, :-1]
    ).abs().sum(dim=(1, 2))


def maximize_activation(
    objective: Callable,
    n: int,
    image_shape: tuple[int, int],
    *,
    steps: int = 200,
    lr: float = 0.05,
    l2: float = 0.0,
    tv: float = 0.0,
    jitter: int = 0,
    seed: int = 0,
):
    """Regularized activation maximization: images that excite chosen units (chapter 22).

    Gradient ascent (Adam) on ``objective(images)[i] - l2 * ||x_i||^2 - tv * TV(x_i)``
    for ``n`` images at once, from small random starts. With ``jitter = J > 0``
    each step first shifts every image by a random offset in ``[-J, J]`` pixels
    along both axes (a cyclic roll), so that the optimum must excite the unit
    at several positions, the transformation robustness of Olah et al.

    Parameters
    ----------
    objective : callable
        Maps a batch of images (n, h, w) to the n activations to maximize (n,),
        e.g. ``lambda im: model(im.reshape(n, -1))[range(n), classes]``.
    n : int
        Number of images optimized together, >= 1.
    image_shape : (int, int)
        ``(h, w)``.
    steps, lr : int, float
        Adam steps (>= 1) and learning rate (> 0).
    l2, tv : float
        Weights (>= 0) of the L2 and total-variation penalties.
    jitter : int
        Largest shift in pixels, >= 0.
    seed : int
        Seeds the start and the shifts; torch's global random state is untouched.

    Returns
    -------
    torch.Tensor
        The images (n, h, w), without a graph. Only the images' gradient is
        computed: the ``.grad`` of the parameters inside ``objective`` is untouched.
    """
    import torch

    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    n = check_int(n, "n", low=1)
    if not isinstance(image_shape, Sequence) or len(image_shape) != 2:
        raise TypeError(f"image_shape must be a pair (h, w), got {image_shape!r}")
    h, w = (check_int(s, "image_shape", low=1) for s in image_shape)
    steps = check_int(steps, "steps", low=1)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    l2 = check_real(l2, "l2", low=0.0)
    tv = check_real(tv, "tv", low=0.0)
    jitter = check_int(jitter, "jitter", low=0)
    seed = check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images = (0.01 * torch.randn(n, h, w, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([images], lr=lr)
    for _ in range(steps):
        shown = images
        if jitter:
            dy, dx = (int(s) for s in torch.randint(-jitter, jitter + 1, (2,), generator=gen))
            shown = torch.roll(images, shifts=(dy, dx), dims=(1, 2))
        value = objective(shown)
        if not isinstance(value, torch.Tensor) or value.shape != (n,):
            raise ValueError(f"objective must return a tensor of shape ({n},), got {value!r:.60}")
        penalty = l2 * (images**2).sum(dim=(1, 2)) + tv * total_variation(images)
        loss = (penalty - value).sum()
        # the gradient for the images only: nothing accumulates in the model's .grad
        (images.grad,) = torch.autograd.grad(loss, images)
        opt.step()
    return images.detach()
