"""Downloaded audio: deleted with its step unless `CHAFFEE_AUDIO_DIR` asks to keep it for the next step."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from chaffee_assets.ingest.kept_audio import kept_audio, obtain_audio
from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.settings import Settings
from chaffee_assets_tests.conftest import shared_path


class CountingSource(LibrarySource):
    """A library folder that counts the downloads asked of it (each one a fetch from YouTube in production)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fetched: list[bool] = []

    def fetch_audio(self, video, dest_dir, *, smallest=False):
        self.fetched.append(smallest)
        return super().fetch_audio(video, dest_dir, smallest=smallest)


@pytest.fixture
def library(tmp_path: Path) -> CountingSource:
    folder = tmp_path / "library"
    folder.mkdir()
    info = {"id": "talkaudio01", "title": "A talk", "upload_date": "20240305", "duration": 150}
    (folder / "talkaudio01.info.json").write_text(json.dumps(info))
    (folder / "talkaudio01.mp3").write_bytes(
        shared_path("realdata", "speakers", "interview_X2zqiX6yL3I.mp3").read_bytes()
    )
    return CountingSource(folder)


def test_without_a_folder_to_keep_it_the_audio_stays_in_the_step_s_own_folder(
    library, tmp_path: Path
) -> None:
    [video] = library.videos_published_on(date(2024, 3, 5))
    audio = obtain_audio(library, video, tmp_path / "step", keep_dir=None)
    assert audio.parent == tmp_path / "step" and library.fetched == [False]


def test_a_kept_download_serves_the_next_step_without_downloading_again(library, tmp_path: Path) -> None:
    [video] = library.videos_published_on(date(2024, 3, 5))
    keep = tmp_path / "audio"
    first = obtain_audio(library, video, tmp_path / "recognition", keep_dir=keep)
    assert first == keep / "talkaudio01.mp3" and first.read_bytes()[:3] in (b"ID3", b"\xff\xfb")
    # Who-said-it asks for the smallest stream, but the file speech recognition kept serves it.
    again = obtain_audio(library, video, tmp_path / "speakers", keep_dir=keep, smallest=True)
    assert again == first and library.fetched == [False]
    assert [p.name for p in keep.iterdir()] == ["talkaudio01.mp3"]


def test_a_half_written_file_is_not_taken_for_kept_audio(library, tmp_path: Path) -> None:
    keep = tmp_path / "audio"
    keep.mkdir()
    (keep / "talkaudio01.mp3.part").write_bytes(b"half")
    (keep / "talkaudio01.info.json").write_text("{}")
    assert kept_audio(keep, "talkaudio01") is None
    [video] = library.videos_published_on(date(2024, 3, 5))
    obtain_audio(library, video, tmp_path / "step", keep_dir=keep, smallest=True)
    assert library.fetched == [True] and kept_audio(keep, "talkaudio01") == keep / "talkaudio01.mp3"


def test_the_setting_names_a_folder(tmp_path: Path) -> None:
    assert Settings.from_env({}).audio_dir is None
    assert Settings.from_env({"CHAFFEE_AUDIO_DIR": str(tmp_path / "a")}).audio_dir == tmp_path / "a"
