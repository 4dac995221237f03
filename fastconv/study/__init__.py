"""``fastconv study``: what convolution buys, measured on handwritten digits.

Trains models with :mod:`fastconv.nn` (a dense net, a CNN without pooling, a LeNet-style
CNN with max pooling; for invariance also LeNet with anti-aliased pooling, blur first or
Zhang's order, and a CNN with a global-average-pooling head), over several seeds, and
reports, as tables, ``results.json`` and PNG plots (means and spreads over the seeds):

1. parameters and cost per layer and per model, and the dense layer a conv layer replaces;
2. the first conv layer as an explicit sparse matrix (sparse connection, weight sharing);
3. equivariance of convolution to shifts, by padding mode;
4. invariance of the three models' accuracy to shifted test images;
5. train/test accuracy and their gap at several training-set sizes;
6. the same on translated digits (8x8 digits at random positions of a larger canvas), with
   parameter counts, and test accuracy against the canvas size.

Every statement about a claim is computed from the numbers of the run. Needs the ``study``
extra (scikit-learn, matplotlib, tqdm). Uses only fastconv's public API.
"""

from .experiments import StudyConfig, run

__all__ = ["StudyConfig", "run"]
