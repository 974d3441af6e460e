"""Images in and out, model-free: the one path every tool uses.

- `load`: safe loading for models (`load_image`), a guarded `peek` for metadata, hashes;
- `save`: sanitised names confined to the output folder, atomic writes, PNGs with metadata;
- `metadata`: the AUTOMATIC1111 `parameters` chunk and the `visionloop` record, read and written.
"""

from visionloop.images.load import (ALLOWED_FORMATS, DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, load_image,
                               peek, pixels_sha256, sha256_file)
from visionloop.images.metadata import a1111_parameters, a1111_sampler, read_metadata
from visionloop.images.save import (atomic_write_bytes, atomic_write_json, confined_path, ensure_output_dir, safe_stem,
                               save_image, unique_name)

__all__ = ["ALLOWED_FORMATS", "DEFAULT_MAX_FILE_MB", "DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "a1111_parameters",
           "a1111_sampler", "atomic_write_bytes", "atomic_write_json", "confined_path", "ensure_output_dir",
           "load_image", "peek", "pixels_sha256", "read_metadata", "safe_stem", "save_image", "sha256_file",
           "unique_name"]
