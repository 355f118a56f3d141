"""dl_course.surfaces: gradients against torch autograd, minima, fast contour drawing."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from dl_course import plotting, surfaces

TORCH_VALUES = {
    "rosenbrock": lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
    "saddle": lambda x, y: x**2 / 2 - y**2 / 2 + y**4 / 4,
}


@pytest.mark.parametrize("name", ["rosenbrock", "saddle"])
def test_value_and_grad_agree_with_torch(name):
    surface = getattr(surfaces, name)()
    rng = np.random.default_rng(0)
    for point in rng.uniform(-1.5, 1.5, size=(10, 2)):
        x = torch.tensor(point, requires_grad=True)
        value = TORCH_VALUES[name](x[0], x[1])
        value.backward()
        assert math.isclose(surface.value(point), value.item(), rel_tol=1e-12, abs_tol=1e-14)
        np.testing.assert_allclose(surface.grad(point), x.grad.numpy(), rtol=1e-12, atol=1e-12)
        hessian = torch.autograd.functional.hessian(
            lambda v: TORCH_VALUES[name](v[0], v[1]), torch.tensor(point)
        )
        np.testing.assert_allclose(surface.hessian(point), hessian.numpy(), rtol=1e-12, atol=1e-10)


def test_quadratic_surface_has_the_requested_condition_number():
    surface = surfaces.quadratic_surface(kappa=40.0, angle=0.2)
    H = np.column_stack([surface.grad(e) for e in np.eye(2)])  # the gradient is H x
    np.testing.assert_allclose(np.linalg.eigvalsh(H), [1.0, 40.0], rtol=1e-12)
    np.testing.assert_allclose(surface.hessian(np.zeros(2)), H, rtol=1e-12)


@pytest.mark.parametrize("make", [surfaces.rosenbrock, surfaces.saddle, surfaces.quadratic_surface])
def test_minima_are_stationary_and_lowest_on_a_grid(make):
    surface = make()
    for minimum in surface.minima:
        np.testing.assert_allclose(surface.grad(np.array(minimum)), 0.0, atol=1e-12)
    gx, gy = np.meshgrid(np.linspace(*surface.xlim, 201), np.linspace(*surface.ylim, 201))
    lowest = surface.value(np.stack([gx, gy], axis=-1)).min()
    assert min(surface.value(np.array(m)) for m in surface.minima) <= lowest + 1e-12


def test_saddle_point_has_a_negative_curvature():
    surface = surfaces.saddle()
    h = 1e-5
    curvature_y = (surface.grad([0.0, h])[1] - surface.grad([0.0, -h])[1]) / (2 * h)
    assert math.isclose(curvature_y, -1.0, rel_tol=1e-6)
    np.testing.assert_allclose(surface.grad([0.0, 0.0]), 0.0)


def test_draw_contours_caches_the_grid():
    surface = surfaces.rosenbrock()
    fig, ax = plotting.subplots()
    surfaces.draw_contours(ax, surface, n=50)
    surfaces.draw_contours(ax, surface, n=50, colors="red")
    assert sum(key[0] is surface for key in surfaces._GRIDS) == 1
    assert ax.get_xlim() == surface.xlim
    with pytest.raises(TypeError, match="surface must be a Surface"):
        surfaces.draw_contours(ax, "rosenbrock")
    matplotlib.pyplot.close(fig)


def test_clip_path_stops_at_the_first_point_outside_the_box():
    surface = surfaces.saddle()
    path = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(surfaces.clip_path(path, surface), path[:3])
    np.testing.assert_array_equal(surfaces.clip_path(path[:2], surface), path[:2])


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="b must be >"):
        surfaces.rosenbrock(b=0.0)
    with pytest.raises(ValueError, match="kappa must be >= 1"):
        surfaces.quadratic_surface(kappa=0.5)
