"""The Debian packages a sound bank is built from: where their effects lie, under which licence.

Licences are read from each package's ``debian/copyright`` (checked by hand for the versions in
Debian 12): ``minetest-data`` ships its sounds under CC-BY-SA-3.0 except the door sounds
(CC-BY-3.0); ``scratch`` (``Media/*``), ``teeworlds-data`` (``data/*``) and ``0ad-data`` are
CC-BY-SA-3.0.  ``ufoai-sound``, ``widelands-data`` and ``bucklespring-data`` are GPL-2+ (ufoai
lists a few CC files without saying which sounds; all of it is treated as GPL-2+): their
recordings may train models but are never shipped (``shippable`` is false).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

# licences whose recordings may ship inside the package (with ATTRIBUTION.md)
SHIPPABLE_LICENCES: tuple[str, ...] = ("CC0-1.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0")


@dataclass(frozen=True)
class PackageSpec:
    """One Debian package: its effects (globs in the unpacked tree, or inside zip archives)."""

    name: str
    licence: str  # SPDX-style identifier of most of its sounds
    holder: str  # copyright holder named in the attribution line
    upstream: str
    files: tuple[str, ...] = ()  # globs of audio files in the unpacked tree
    archives: tuple[tuple[str, str], ...] = ()  # (zip path in the tree, member glob)
    licence_overrides: tuple[tuple[str, str], ...] = field(default=())  # (path glob, licence)
    drop_archives: bool = False  # delete an archive from the cache once its audio is out

    def licence_of(self, path: str) -> str:
        for pattern, licence in self.licence_overrides:
            if fnmatch.fnmatch(path, pattern):
                return licence
        return self.licence

    def shippable(self, path: str) -> bool:
        return self.licence_of(path) in SHIPPABLE_LICENCES

    def unpack_globs(self) -> tuple[str, ...]:
        """What ``fetch`` takes out of the .deb: the audio, the archives, the copyright file."""
        return (
            self.files
            + tuple(zip_path for zip_path, _ in self.archives)
            + (f"usr/share/doc/{self.name}/copyright",)
        )


MT = "usr/share/games/minetest/games/minetest_game/mods"
PACKAGES: dict[str, PackageSpec] = {
    p.name: p
    for p in (
        PackageSpec(
            name="minetest-data",
            licence="CC-BY-SA-3.0",
            holder="Minetest Game contributors (celeron55, Perttu Ahola et al.)",
            upstream="https://github.com/minetest/minetest_game",
            files=(f"{MT}/*/sounds/*.ogg",),
            licence_overrides=((f"{MT}/doors/sounds/*", "CC-BY-3.0"),),
        ),
        PackageSpec(
            name="scratch",
            licence="CC-BY-SA-3.0",
            holder="Massachusetts Institute of Technology",
            upstream="https://scratch.mit.edu",
            files=("usr/share/scratch/Media/Sounds/*/*",),
        ),
        PackageSpec(
            name="teeworlds-data",
            licence="CC-BY-SA-3.0",
            holder="Magnus Auvinen and contributors",
            upstream="https://www.teeworlds.com",
            files=("usr/share/games/teeworlds/data/audio/*.wv",),
        ),
        PackageSpec(
            name="0ad-data",
            licence="CC-BY-SA-3.0",
            holder="Wildfire Games",
            upstream="https://play0ad.com",
            archives=(("usr/share/games/0ad/mods/public/public.zip", "audio/*.ogg"),),
            drop_archives=True,
        ),
        PackageSpec(
            name="ufoai-sound",
            licence="GPL-2+",
            holder="UFO: Alien Invasion team",
            upstream="https://ufoai.org",
            archives=(("usr/share/games/ufoai/base/0snd.pk3", "sound/*.ogg"),),
        ),
        PackageSpec(
            name="widelands-data",
            licence="GPL-2+",
            holder="Widelands Development Team",
            upstream="https://www.widelands.org",
            files=("usr/share/games/widelands/data/sound/*.ogg",),
        ),
        PackageSpec(
            name="bucklespring-data",
            licence="GPL-2+",
            holder="Ico Doornekamp",
            upstream="https://github.com/zevv/bucklespring",
            files=("usr/share/buckle/wav/*.wav",),
        ),
    )
}
# all of them: the GPL ones add keyboard, sawing, hammering and more footsteps for training
DEFAULT_PACKAGES: tuple[str, ...] = tuple(PACKAGES)
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".ogg", ".oga", ".flac", ".mp3", ".wv")
