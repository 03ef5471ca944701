"""What pyproject.toml cannot say: a built wheel carries the graph library as package data.

The built-in graphs (``graphs/``, ``graphs/modules/``), models and sample clip (``assets/``) stay at the top of the
repository, where a checkout and an editable install use them (``calculators.library.root()`` returns the
repository root). A wheel copies them to ``calculators/_data/`` so that an installed framegraph runs from any
folder. An editable install copies nothing: setuptools' build_py does not run in editable mode.

Everything else about the distribution is in pyproject.toml. MANIFEST.in puts the same folders in an sdist, so a
wheel built from the sdist carries them too.
"""
from __future__ import annotations

import os
import shutil
from glob import glob

from setuptools import setup
from setuptools.command.build_py import build_py

#: Where the library lands in the wheel, and the files it holds (globs relative to the repository root).
DATA_PACKAGE, DATA_DIR = "calculators", "_data"
LIBRARY_FILES = (
    "graphs/*.yaml",
    "graphs/modules/*.yaml",
    "assets/models/*.onnx",
    "assets/models/*.tflite",
    "assets/models/*.md",
    "assets/models/*.json",
    "assets/models/LICENSE",
    "assets/models/*.txt",
    "assets/media/*.mp4",
    "assets/media/README.md",
)


class BuildPyWithLibrary(build_py):
    """build_py that also copies LIBRARY_FILES to ``<build_lib>/calculators/_data/``.

    The files are added to build_py's own data-file list, so they are copied, recorded in the wheel's RECORD and
    reported by ``get_outputs()`` like any package data.
    """

    def run(self) -> None:
        if not self.editable_mode:
            # A build folder reused from an earlier build may hold a graph deleted since: start the library afresh.
            shutil.rmtree(os.path.join(self.build_lib, DATA_PACKAGE, DATA_DIR), ignore_errors=True)
        super().run()

    def _get_data_files(self):
        return [*super()._get_data_files(), self._library()]

    def get_data_files_without_manifest(self):
        return [*super().get_data_files_without_manifest(), self._library()]

    def _library(self) -> tuple[str, str, str, list[str]]:
        """One ``(package, src_dir, build_dir, filenames)`` entry, as build_py's data files are listed."""
        names = sorted({name for pattern in LIBRARY_FILES for name in glob(pattern) if os.path.isfile(name)})
        if not any(name.startswith("graphs") for name in names):
            raise FileNotFoundError(f"no built-in graphs found under {os.path.abspath('graphs')}: the wheel would "
                                    "carry no graph library (build from the repository root or its sdist)")
        return DATA_PACKAGE, os.curdir, os.path.join(self.build_lib, DATA_PACKAGE, DATA_DIR), names


setup(cmdclass={"build_py": BuildPyWithLibrary})
