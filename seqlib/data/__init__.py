"""Datasets, generators and loaders of the book, each small enough for the
smoke profile.

Loaders return float32 images in [0, 1], channels first, and int64 labels.
Files from the internet go through :func:`seqlib.data.download.fetch` (checked
against pinned digests, cached under ``$SEQLIB_CACHE`` or ``~/.cache/seqlib``).
In a dry run (:func:`seqlib.profiles.dry_run`) nothing is downloaded, and the
loaders of the full datasets return generated stand-ins of the same format
(:mod:`seqlib.data.standins`) for whatever is not on the machine.
"""

from seqlib.data.cifar10 import CIFAR10_CLASSES, load_cifar10, random_crop_flip
from seqlib.data.download import (
    ChecksumMismatchError,
    CorruptFileError,
    DatasetUnavailableError,
    cache_dir,
    fetch,
    file_digest,
    sha256_file,
)
from seqlib.data.events import EventClips, load_event_clips, make_event_clips
from seqlib.data.fashion_mnist import (
    FASHION_CLASSES,
    load_fashion_mnist,
    read_idx,
)
from seqlib.data.flickr8k import CaptionedImage, load_flickr8k
from seqlib.data.images import load_digits, load_sample_photo
from seqlib.data.medmnist import (
    ORGAN_CLASSES,
    load_organmnist3d,
    read_medmnist_npz,
)
from seqlib.data.parallel import load_multi30k, load_tatoeba
from seqlib.data.scenes import (
    Scene,
    SceneConfig,
    SceneData,
    load_scenes,
    make_scenes,
)
from seqlib.data.translation import (
    BucketBatches,
    Pair,
    TranslationData,
    Vocab,
    translation_task,
)
from seqlib.data.video import (
    ARROW_CLASSES,
    VideoData,
    make_arrow_of_time,
    reverse_time,
)

__all__ = [
    "CIFAR10_CLASSES",
    "load_cifar10",
    "random_crop_flip",
    "CaptionedImage",
    "EventClips",
    "load_event_clips",
    "make_event_clips",
    "Scene",
    "SceneConfig",
    "SceneData",
    "load_flickr8k",
    "load_scenes",
    "make_scenes",
    "BucketBatches",
    "Pair",
    "TranslationData",
    "Vocab",
    "load_multi30k",
    "load_tatoeba",
    "translation_task",
    "ChecksumMismatchError",
    "CorruptFileError",
    "DatasetUnavailableError",
    "FASHION_CLASSES",
    "cache_dir",
    "fetch",
    "file_digest",
    "load_digits",
    "load_fashion_mnist",
    "load_sample_photo",
    "read_idx",
    "sha256_file",
    "ARROW_CLASSES",
    "VideoData",
    "make_arrow_of_time",
    "reverse_time",
    "ORGAN_CLASSES",
    "load_organmnist3d",
    "read_medmnist_npz",
]
