"""Adversarial examples and adversarial training (chapter 20).

:func:`fgsm` (the fast gradient sign method of Goodfellow et al.) and :func:`pgd`
(projected gradient descent, Madry et al.) perturb a batch of inputs inside the
L-infinity ball of radius ``eps`` so as to increase a classifier's cross-entropy.
Both treat the model as something to *look at*, never to change:

- the model's mode (train / eval) is restored (the attack itself runs in eval mode,
  so dropout does not randomize the gradient);
- the parameters and their ``.grad`` are left exactly as they were (the input
  gradient is taken with :func:`torch.autograd.grad`, which accumulates nothing);
- the caller's input tensor is neither changed in place nor marked
  ``requires_grad``; the result is a new tensor without a graph.

:func:`accuracy_under_attack` evaluates a model over a grid of radii, and
:func:`adversarial_train` trains a model (or a stack of models from
:func:`dl_course.training.stack_models`, one per seed) on PGD examples, the
min-max training of Madry et al.

The module is torch-only by nature; torch is imported inside the functions so
that ``import dl_course.robustness`` stays cheap.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence

import numpy as np

from dl_course._checks import (
    check_bool,
    check_float_tensor,
    check_int,
    check_module,
    check_real,
    check_seed,
)
from dl_course._threads import limited_threads, one_torch_thread

#: The attacks :func:`accuracy_under_attack` knows.
ATTACKS = ("fgsm", "pgd")


# -- validation ---------------------------------------------------------------------------------


def _check_inputs(x, y):
    import torch

    check_float_tensor(x, "x")
    if x.ndim < 1 or x.numel() == 0:
        raise ValueError(f"x must be a non-empty batch of inputs, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must contain only finite numbers (no NaN or inf)")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch tensor of class indices, got {type(y).__name__}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D (N,) or, for a stack, 2-D (K, N); got {tuple(y.shape)}")
    return x, y.long()


def _check_clamp(clamp, x):
    """``clamp`` as (low, high) floats, or None; ``x`` must lie inside the box."""
    if clamp is None:
        return None
    if isinstance(clamp, str | bytes) or not isinstance(clamp, Sequence) or len(clamp) != 2:
        raise TypeError(f"clamp must be a pair (low, high) or None, got {clamp!r}")
    low = check_real(clamp[0], "clamp[0]")
    high = check_real(clamp[1], "clamp[1]")
    if not low < high:
        raise ValueError(f"clamp must satisfy low < high, got ({low}, {high})")
    if float(x.min()) < low or float(x.max()) > high:
        raise ValueError(
            f"x must lie inside the clamp box [{low}, {high}], but its values range from "
            f"{float(x.min()):.4g} to {float(x.max()):.4g}; rescale x or pass clamp=None"
        )
    return low, high


def _work(model, x) -> int:
    """Multiply-adds of one forward pass per member, to decide on threads (see _threads)."""
    import torch

    from dl_course.training import _is_stack

    if not isinstance(model, torch.nn.Module) or not isinstance(x, torch.Tensor) or x.ndim < 1:
        return 0  # the validation will complain
    members = len(model) if _is_stack(model) else 1
    rows = x.numel() // max(x.shape[-1], 1)
    if members > 1 and x.ndim >= 3 and x.shape[0] == members:
        rows //= members  # each member sees its own rows
    return rows * sum(p.numel() for p in model.parameters()) // members


def _on_few_threads(attack):
    """Run ``attack(model, x, ...)`` on one torch thread when the model and batch are small.

    Two threads on tiny tensors cost far more than they save (element-wise ops and
    small products spin up the thread pool); this is the attacks' version of
    :func:`dl_course._threads.limited_threads` without threadpoolctl's per-call cost
    (:func:`dl_course._threads.one_torch_thread`).
    """

    @functools.wraps(attack)
    def wrapper(model, x, *args, **kwargs):
        with one_torch_thread(_work(model, x)):
            return attack(model, x, *args, **kwargs)

    return wrapper


def _loss_fn(model, y):
    """The summed cross-entropy of ``model`` on ``y`` as a function of the input."""
    import torch

    def loss(x):
        logits = model(x)
        if logits.ndim < 2:
            raise ValueError(f"model must return logits of shape (N, C), got {tuple(logits.shape)}")
        batch = logits.shape[:-1]
        if y.shape != batch and y.shape != batch[-1:]:
            raise ValueError(
                f"y must have shape {tuple(batch[-1:])} or {tuple(batch)} to match the logits "
                f"of shape {tuple(logits.shape)}, got {tuple(y.shape)}"
            )
        labels = y.expand(batch).reshape(-1)
        # summed, not averaged: each example's gradient does not shrink with the batch size
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels, reduction="sum"
        )

    return loss


@_on_few_threads
def input_gradient(model, x, y):
    """Gradient of the summed cross-entropy with respect to the input ``x`` (chapter 20).

    The model runs in eval mode and its mode is restored afterwards; the
    parameters' ``.grad`` are untouched and ``x`` is not modified.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits of shape (N, C), or (K, N, C) for a stack.
    x : torch.Tensor
        Inputs; the batch axis first (N, ...), or (K, N, ...) for a stack.
    y : torch.Tensor
        Integer labels of shape (N,) (or (K, N) for a stack).

    Returns
    -------
    torch.Tensor
        Same shape as ``x``, without a graph.
    """
    model = check_module(model)
    x, y = _check_inputs(x, y)
    return _input_gradient(model, x, y)


def _input_gradient(model, x, y):
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            probe = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(_loss_fn(model, y)(probe), probe)
    finally:
        model.train(was_training)
    return grad.detach()


def _project(x_adv, x, eps: float, box):
    import torch

    x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    return x_adv if box is None else x_adv.clamp(*box)


# -- attacks ------------------------------------------------------------------------------------


@_on_few_threads
def fgsm(model, x, y, eps: float, clamp: tuple[float, float] | None = (0.0, 1.0)):
    """The fast gradient sign method: one signed gradient step of size ``eps`` (chapter 20).

    ``x_adv = clip(x + eps * sign(grad_x L(x, y)))``, with ``L`` the (summed)
    cross-entropy and the clip onto the box ``clamp``. It maximizes the
    first-order approximation of the loss over the L-infinity ball of radius
    ``eps``.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits of shape (N, C), or a stack
        (:func:`dl_course.training.stack_models`) returning (K, N, C): with inputs
        of shape (K, N, ...) each member is attacked on its own rows; with shared
        inputs (N, ...) the perturbation attacks the sum of the members' losses.
    x : torch.Tensor
        Floating-point inputs inside the box ``clamp``. Not modified.
    y : torch.Tensor
        Integer labels, shape (N,) (or (K, N) for a stack).
    eps : float
        Radius of the L-infinity ball, >= 0.
    clamp : (float, float) or None
        The box of valid inputs (pixels in [0, 1] by default), ``low < high``;
        None for no box.

    Returns
    -------
    torch.Tensor
        The adversarial inputs, a new tensor of the shape of ``x``, without a graph.

    Notes
    -----
    The model's mode, its parameters and their ``.grad`` are left as they were.
    """
    model = check_module(model)
    x, y = _check_inputs(x, y)
    eps = check_real(eps, "eps", low=0.0)
    box = _check_clamp(clamp, x)
    x = x.detach()
    if eps == 0.0:
        return x.clone()
    step = eps * _input_gradient(model, x, y).sign()
    return _project(x + step, x, eps, box)


@_on_few_threads
def pgd(
    model,
    x,
    y,
    eps: float,
    alpha: float,
    steps: int,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
    *,
    random_start: bool = True,
):
    """Projected gradient descent on the loss, in the L-infinity ball (chapter 20).

    Starting from ``x`` plus uniform noise in ``[-eps, eps]`` (``random_start``),
    repeat ``steps`` times: take a signed gradient step of size ``alpha``, then
    project back onto the ball of radius ``eps`` around ``x`` and onto the box
    ``clamp``. With ``steps=1``, ``alpha=eps`` and no random start it is
    :func:`fgsm`.

    Parameters
    ----------
    model, x, y, clamp
        As for :func:`fgsm`.
    eps : float
        Radius of the L-infinity ball, >= 0.
    alpha : float
        Step size, > 0 (Madry et al. use about ``2.5 * eps / steps``).
    steps : int
        Number of gradient steps, >= 1.
    seed : int
        Seed of the random start (a private generator: torch's global random
        state is untouched).
    random_start : bool
        Start from a uniformly random point of the ball (True) or from ``x``.

    Returns
    -------
    torch.Tensor
        The adversarial inputs, a new tensor of the shape of ``x``, without a graph.
    """
    import torch

    model = check_module(model)
    x, y = _check_inputs(x, y)
    eps = check_real(eps, "eps", low=0.0)
    alpha = check_real(alpha, "alpha", low=0.0, low_open=True)
    steps = check_int(steps, "steps", low=1)
    box = _check_clamp(clamp, x)
    seed = check_seed(seed)
    random_start = check_bool(random_start, "random_start")
    x = x.detach()
    if eps == 0.0:
        return x.clone()
    x_adv = x.clone()
    if random_start:
        generator = torch.Generator().manual_seed(seed)
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
        x_adv = _project(x + eps * (2 * noise - 1), x, eps, box)
    for _ in range(steps):
        ascent = alpha * _input_gradient(model, x_adv, y).sign()
        x_adv = _project(x_adv + ascent, x, eps, box)
    return x_adv


def _attack(model, x, y, eps, attack: str, kwargs: dict):
    if attack == "fgsm":
        return fgsm(model, x, y, eps, **kwargs)
    return pgd(model, x, y, eps, **kwargs)


@_on_few_threads
def accuracy_under_attack(model, x, y, eps_values, attack: str = "pgd", **kwargs) -> np.ndarray:
    """Accuracy of ``model`` on attacked inputs, one value per radius (chapter 20).

    Parameters
    ----------
    model, x, y
        As for :func:`fgsm`.
    eps_values : sequence of float
        Radii, each >= 0 (0 gives the clean accuracy).
    attack : {"fgsm", "pgd"}
    **kwargs
        Passed to the attack: ``clamp`` for both; ``alpha`` (default
        ``2.5 * eps / steps``), ``steps`` (default 10), ``seed`` and
        ``random_start`` for PGD. ``alpha`` may also be a callable of ``eps``.

    Returns
    -------
    ndarray
        Shape (len(eps_values),), or (len(eps_values), K) for a stack of K models.
    """
    import torch

    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {list(ATTACKS)}, got {attack!r}")
    if isinstance(eps_values, numbers.Real):
        eps_values = [eps_values]
    eps_values = [check_real(e, f"eps_values[{i}]", low=0.0) for i, e in enumerate(eps_values)]
    if not eps_values:
        raise ValueError("eps_values must hold at least one radius")
    out = []
    for eps in eps_values:
        options = dict(kwargs)
        if attack == "pgd":
            options.setdefault("steps", 10)
            alpha = options.get("alpha")
            if alpha is None:
                alpha = 2.5 * eps / options["steps"]
            options["alpha"] = alpha(eps) if callable(alpha) else alpha
            if options["alpha"] <= 0:  # eps = 0: any positive step, nothing moves
                options["alpha"] = 1.0
        x_adv = _attack(model, x, y, eps, attack, options)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            correct = model(x_adv).argmax(dim=-1) == y
        model.train(was_training)
        out.append(correct.double().mean(dim=-1).numpy())
    return np.array(out)


# -- adversarial training -----------------------------------------------------------------------


def adversarial_train(
    model,
    X,
    y,
    *,
    eps: float,
    alpha: float,
    steps: int,
    lr: float,
    epochs: int,
    batch_size: int = 64,
    optimizer: str = "adam",
    seed: int | Sequence[int] = 0,
    clamp: tuple[float, float] | None = (0.0, 1.0),
):
    """Train ``model`` on PGD examples: min over weights of the max over the ball (chapter 20).

    Every mini-batch is replaced by its PGD attack (:func:`pgd` with a random
    start, ``steps`` steps of size ``alpha`` in the ball of radius ``eps``)
    against the current weights, and one optimizer step is taken on the mean
    cross-entropy of the attacked batch: the adversarial training of Madry et al.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place. A stack of K models (:func:`dl_course.training.stack_models`)
        trains its members side by side, each on its own mini-batches and attacks.
    X, y : arrays
        Training inputs (N, d) inside ``clamp`` and integer labels (N,).
    eps, alpha, steps, clamp
        The training attack, as for :func:`pgd`.
    lr : float
        Learning rate, > 0.
    epochs : int
        Passes over the shuffled training set, >= 1.
    batch_size : int
        Examples per mini-batch, >= 1.
    optimizer : {"adam", "sgd"}
        ``torch.optim.Adam`` or plain ``torch.optim.SGD``.
    seed : int or sequence of int
        Seeds the mini-batch order and the PGD random starts; for a stack, one
        seed per member (a single seed ``s`` gives member k the seed ``s + k``).

    Returns
    -------
    dl_course.training.TrainingHistory
        ``train_loss`` (mean adversarial loss of each epoch) and
        ``train_accuracy`` (clean training accuracy after each epoch); arrays of
        K values per epoch for a stack.

    Raises
    ------
    dl_course.training.DivergenceError
        If an epoch's loss is NaN, infinite or explodes.
    """
    import torch

    from dl_course.training import (
        TrainingHistory,
        _as_tensors,
        _evaluate,
        _is_stack,
        batches,
        check_divergence,
    )

    model = check_module(model)
    X_t, y_t = _as_tensors(X, y, "")
    stacked = _is_stack(model)
    members = len(model) if stacked else 1
    seeds = _member_seeds(seed, members)
    params = dict(
        eps=check_real(eps, "eps", low=0.0),
        alpha=check_real(alpha, "alpha", low=0.0, low_open=True),
        steps=check_int(steps, "steps", low=1),
        clamp=clamp,
    )
    _check_clamp(clamp, X_t)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    opt_class = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_class(model.parameters(), lr=lr)
    rngs = [np.random.default_rng(s) for s in seeds]
    history = TrainingHistory()
    was_training = model.training
    n = X_t.shape[0]
    work = batch_size * sum(p.numel() for p in model.parameters()) // members
    with limited_threads(work):
        initial = np.atleast_1d(_evaluate(model, X_t, y_t)[0])
        model.train()
        try:
            count = 0
            for epoch in range(1, epochs + 1):
                orders = [batches(n, batch_size, rng) for rng in rngs]
                total = np.zeros(members)
                for index in zip(*orders, strict=True):
                    index = torch.as_tensor(np.stack(index) if stacked else index[0])
                    xb, yb = X_t[index], y_t[index]
                    attack_seed = (seeds[0] * 1_000_003 + count) % 2**63
                    x_adv = pgd(model, xb, yb, seed=attack_seed, **params)
                    logits = model(x_adv)
                    losses = (
                        torch.nn.functional.cross_entropy(
                            logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none"
                        )
                        .view(*yb.shape)
                        .mean(dim=-1)
                    )
                    opt.zero_grad()
                    losses.sum().backward()
                    opt.step()
                    total += np.atleast_1d(losses.detach().double().numpy()) * index.shape[-1]
                    count += 1
                mean = total / n
                for k in range(members):
                    check_divergence(float(mean[k]), epoch, lr, float(initial[k]))
                history.train_loss.append(mean if stacked else float(mean[0]))
                history.train_accuracy.append(_evaluate(model, X_t, y_t)[1])
        finally:
            model.train(was_training)
    return history


def _member_seeds(seed, members: int) -> list[int]:
    if isinstance(seed, numbers.Integral):
        return [check_seed(seed) + k for k in range(members)]
    if isinstance(seed, str | bytes) or not isinstance(seed, Sequence):
        raise TypeError(f"seed must be an int or a sequence of ints, got {type(seed).__name__}")
    seeds = [check_seed(s, f"seed[{k}]") for k, s in enumerate(seed)]
    if len(seeds) != members:
        raise ValueError(f"seed must hold one seed per member ({members}), got {len(seeds)}")
    return seeds
