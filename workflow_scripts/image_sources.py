"""Where the NIH images are: PNG files and `images_*.tar.gz` archives below one folder.

NIH ships the images as twelve archives (45 GB) that unpack to `images/<name>.png`; mirrors
nest them as `images_001/images/<name>.png`. Both forms are found recursively, and may be
mixed. Archives are read as gzip streams, member by member, never unpacked to disk: a
cluster's network file system serves twelve long reads far better than 112,120 small files.
"""

import gzip
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workflow_scripts.stage import InputError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
READ_SIZE = 1 << 20  # bytes per read from an archive: few system calls on a network drive


@dataclass(frozen=True)
class ImageSources:
    files: dict  # PNG file name -> path of the loose file
    archives: tuple  # paths of the tar.gz archives, sorted


class ArchiveError(Exception):
    """An archive that ends early or holds corrupt data. `member` is the file name of the
    PNG being read when it stopped, None if it stopped between members."""

    def __init__(self, position, member, reason):
        super().__init__(f"truncated or corrupt at {position} ({reason})")
        self.member = member


def find_images(root):
    """The PNG files and tar.gz archives anywhere under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data.images: {root} is not a folder. Point it at the folder holding "
                         "the NIH images: the archives images_001.tar.gz ... images_012.tar.gz, "
                         "or what they unpack to (images/ or images_001/images/ ...).")
    files, archives, duplicates = {}, [], []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name.lower().endswith(".png"):
                if name in files:
                    duplicates.append((name, files[name], path))
                files[name] = path
            elif name.lower().endswith(ARCHIVE_SUFFIXES):
                archives.append(path)
    if not files and not archives:
        raise InputError(f"data.images: no PNG files and no .tar.gz archives under {root}. "
                         "Put images_001.tar.gz ... images_012.tar.gz (or the PNGs they unpack "
                         "to) there, or fix the path.")
    if duplicates:
        name, first, second = duplicates[0]
        raise InputError(f"data.images: {len(duplicates)} file name(s) occur twice under {root}, "
                         f"e.g. {name}: {first} and {second}. Keep one copy of each image.")
    return ImageSources(files, tuple(sorted(archives)))


class StopAtDamage:
    """A gzip stream that ends where its data does, instead of raising there.

    tarfile reads ahead, so an error raised by the gzip stream would surface at whichever
    member happened to be buffered. Ending the stream instead lets tarfile fail, or stop, at
    the member whose bytes are cut, and `damage` keeps what was wrong.
    """

    def __init__(self, stream):
        self.stream, self.damage = stream, None

    def read(self, size):
        parts, length = [], 0
        while self.damage is None and length < size:
            try:
                part = self.stream.read1(size - length)
            except (EOFError, zlib.error, OSError) as error:
                self.damage = error
                break
            if not part:
                break
            parts.append(part)
            length += len(part)
        return b"".join(parts)


def png_members(archive, wanted):
    """Stream `archive` once, yielding (file name, bytes) for each PNG member: the bytes if
    the name is in `wanted`, else None (the member is skipped unread).

    Raises ArchiveError naming the member where reading stopped. The gzip stream is read to
    its end, so a truncated download or a failed checksum is caught even where the tar
    structure happens to end cleanly.
    """
    position, name = "its first member", None
    with gzip.open(archive, "rb") as compressed:
        stream = StopAtDamage(compressed)
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=READ_SIZE) as tar:
                for member in tar:
                    position, name = f"member {member.name}", PurePosixPath(member.name).name
                    if not (member.isfile() and name.lower().endswith(".png")):
                        name = None
                    else:
                        yield name, tar.extractfile(member).read() if name in wanted else None
                    position, name = f"the member after {member.name}", None
        except tarfile.TarError as error:
            raise ArchiveError(position, name, stream.damage or error) from error
        while stream.read(READ_SIZE):
            pass
        if stream.damage is not None:
            raise ArchiveError(position, name, stream.damage) from stream.damage
