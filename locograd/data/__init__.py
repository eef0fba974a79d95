"""Data sets for the autoencoder benchmarks: CURVES (generated), MNIST and Fashion-MNIST (files).

* :func:`load` ``(name, data_dir=None, limit_train=None, seed=0)`` returns a
  :class:`Dataset` for a name in :data:`DATASETS`;
* :func:`curves` generates the CURVES re-creation (no file, no download);
* :func:`find_mnist_files` finds MNIST-format files already on the machine
  (``data_dir``, then ``$LOCOGRAD_DATA``, then the usual places such as
  Debian's ``/usr/share/datasets/fashion-mnist``);
* :func:`read_idx` / :func:`write_idx` and :func:`read_mnist_npz` read the
  file formats; :func:`read_dataset_npz` reads your own data set from one ``.npz``
  (``load("path/to/mine.npz")`` does the same);
* every data problem raises :class:`DataError` (a ``ValueError``) with a
  one-line message that says what to do.

Nothing is ever downloaded, and nothing is cached on disk.

>>> from locograd import data
>>> ds = data.load("curves", limit_train=4)
>>> ds.x_train.shape, ds.image_shape, ds.y_train is None
((4, 784), (28, 28), True)
"""

from .curves import curves
from .dataset import Dataset
from .errors import DataError
from .idx import read_idx, write_idx
from .npz import read_dataset_npz, read_mnist_npz
from .registry import DATASETS, MnistFiles, dataset_key, find_mnist_files, is_file_name, load

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "MnistFiles",
    "curves",
    "dataset_key",
    "find_mnist_files",
    "is_file_name",
    "load",
    "read_dataset_npz",
    "read_idx",
    "read_mnist_npz",
    "write_idx",
]
