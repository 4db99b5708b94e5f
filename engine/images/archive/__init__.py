"""`docker save` and `docker load`: image archives out of and into the store.

Saving writes what Docker 25+ writes: a docker-archive (`manifest.json`,
`repositories`) that is at the same time an OCI image layout (`oci-layout`,
`index.json`, `blobs/sha256/…`), so docker, skopeo and umoci all read it. Every layer
goes out as the uncompressed tar whose sha256 is its diff ID, decompressed from the
kept tarball while streaming; the tarball is checked against its digest first and the
stream against the diff ID, and the last bytes of a layer are held back until that
check passes, so a corrupt layer never completes in an archive.

Loading reads docker-archives (with or without the OCI parts) and pure OCI layout
archives (`skopeo copy … oci-archive:`). The upload is spooled to the store's tmp/,
then parsed by `tarfile` in a worker thread: parsing only, nothing from the archive is
written under a name it chose. Archives are hostile until proven otherwise: absolute
or `..` member names, links leaving the archive, hard links and devices, sizes beyond
the end, JSON files over `MAX_JSON_BYTES`, paths in JSON outside the archive, blobs
that do not match their digests and layers that do not match the config's diff IDs
are all refused (400) before the store is touched.

The modules, one job each:

- `formats`: media types, annotations and blob paths both directions share;
- `selection`: which images a save names, with the tags they carry;
- `layout`: the saved archive's members and tar headers, deterministic bytes;
- `layers`: a layer's uncompressed tar out of the store, sized and checked;
- `save`: `prepare_save` (every check before the first byte) and the stream;
- `tarsafety`: an uploaded archive indexed without trusting it;
- `contents`: its images, from a docker-archive or an OCI layout;
- `extract`: spooling the upload and copying layers out, checked;
- `load`: `load_archive`, into the store, with rollback of new layers on failure.
"""

from engine.images.archive.formats import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    OCI_LAYOUT,
)
from engine.images.archive.layout import LayerSource, Member, layout, tar_header
from engine.images.archive.load import LoadedImage, LoadedTag, load_archive
from engine.images.archive.save import SavePlan, prepare_save
from engine.images.archive.selection import SavedImage, select_images
from engine.images.archive.tarsafety import MAX_JSON_BYTES, MAX_MEMBERS

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "MAX_JSON_BYTES",
    "MAX_MEMBERS",
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER",
    "MEDIA_MANIFEST",
    "OCI_LAYOUT",
    "LayerSource",
    "LoadedImage",
    "LoadedTag",
    "Member",
    "SavePlan",
    "SavedImage",
    "layout",
    "load_archive",
    "prepare_save",
    "select_images",
    "tar_header",
]
