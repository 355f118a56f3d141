"""dl_course: the library behind the executable deep-learning textbook.

Import the module a chapter teaches, e.g. ``from dl_course import perceptron``.
Importing :mod:`dl_course` itself is cheap: it loads no torch, matplotlib or
scikit-learn; each submodule imports what it needs.

The modules and the chapters they serve:

==================  ============================================================  ========
module              what it holds                                                 chapter
==================  ============================================================  ========
``data``            synthetic data sets and scikit-learn's bundled digits         all
``perceptron``      the perceptron rule and Novikoff's bound                      1
``expressivity``    shallow networks, linear collapse, universal approximation    2
``mlp``             the engine MLP (``MLP``, ``fit``) and a torch MLP builder     2, 5
``activations``     the activation registry, derivatives and signal flow          3
``losses``          hinge, softmax cross-entropy, MLE losses, entropy and KL      4
``linear``          linear classifiers trained by gradient descent                4
``autograd``        a micrograd-style reverse-mode engine on NumPy arrays         5
``backprop``        hand-derived gradients and the computational graph            5
``training``        the torch training loop, its history and divergence checks    3 on
``optim``           SGD, momentum, AdaGrad, RMSProp, Adam; learning-rate          6
                    schedules
``quadratic``       convergence rates of GD and the heavy ball on quadratics      6
``surfaces``        2-D test surfaces (bowl, Rosenbrock, saddle) with contours    6
``gradient_noise``  per-example gradients and the mini-batch variance law         6
``scheduling``      digits runs under learning-rate schedules                     6
``preprocessing``   centering, standardization, PCA and ZCA whitening             7
``augmentation``    shifts, rotations and noise for 8x8 digits                    7
``search``          grid vs random hyperparameter search                          7
``ensembles``       ensembles and snapshot ensembles                              7
``gradient_flow``   per-layer gradients, Jacobian products, clipping              8
``initialization``  Xavier, He, orthogonal and torch's default initialization     9
``normalization``   BatchNorm, LayerNorm, RMSNorm with their backward passes       10
``bias_variance``   the bias-variance decomposition of polynomial regression      11
``regularization``  ridge, lasso by proximal gradient, weight decay, dropout      11
``theory``          ``signal_propagation`` (dynamical isometry)                   9
                    ``double_descent`` (random features, ridgeless risk)          12
                    ``bounds`` (VC, Rademacher, PAC-Bayes)                        13
``report``          numbers from the experiments into the prose (glue)            all
``plotting``        the book's figure style and drawing helpers                   all
``widgets``         ``explore``: sliders live in Jupyter and static on the site   all
==================  ============================================================  ========

``plotting`` and ``widgets`` know nothing about deep learning; the other modules
use the building blocks below them, never the reverse.
"""

__version__ = "0.1.0"
