"""The local library source on the real 211-video Huberman library and on small broken libraries."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.sources import VideoSource
from chaffee_assets.ingest.videos import Video
from chaffee_assets_tests.conftest import shared_path
from chaffee_assets_tests.source_contract import contract_problems

DASH_ID = "-OBCwiPPfEU"  # a real id beginning with '-', with .en.srt captions
VTT_ID = "-wIt_WsJGfw"  # '-' and '_' in the id, with .en.vtt captions


@pytest.fixture(scope="module")
def huberman() -> LibrarySource:
    return LibrarySource(shared_path("eval", "huberman_dev", "library"))


def _copy_video(video_id: str, dest: Path) -> None:
    for path in shared_path("eval", "huberman_dev", "library").glob(f"{video_id}.*"):
        shutil.copy(path, dest / path.name)


def _info(dest: Path, video_id: str, **fields: object) -> Path:
    info = {"id": video_id, "title": f"Video {video_id}", "upload_date": "20240102", **fields}
    path = dest / f"{video_id}.info.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


# -- the real library --------------------------------------------------------------------------


def test_library_source_satisfies_the_video_source_interface(huberman: LibrarySource) -> None:
    assert contract_problems(huberman) == []
    assert huberman.name == "library"


def test_the_interface_check_catches_a_missing_member_and_a_changed_signature() -> None:
    class NoAudio:
        name = "partial"

        def videos_published_on(self, day): ...
        def publish_dates(self): ...
        def fetch_captions(self, video): ...

    class RenamedArgument(NoAudio):
        def fetch_audio(self, video, folder): ...

    assert not isinstance(NoAudio(), VideoSource)
    assert contract_problems(NoAudio()) != []
    assert isinstance(RenamedArgument(), VideoSource)
    assert contract_problems(RenamedArgument()) == [
        "fetch_audio('video', 'folder') differs from VideoSource.fetch_audio('video', 'dest_dir', 'smallest')"
    ]


def test_every_real_library_video_is_listed_on_its_upload_day(huberman: LibrarySource) -> None:
    days = huberman.publish_dates()
    listed = [v for day in days for v in huberman.videos_published_on(day)]
    assert len(listed) == 211
    assert huberman.skipped() == []
    infos = shared_path("eval", "huberman_dev", "library").glob("*.info.json")
    expected_days = {
        datetime.strptime(json.loads(p.read_text())["upload_date"], "%Y%m%d").date() for p in infos
    }
    assert days == expected_days
    assert all(v.source == "library" and v.partition_date in days for v in listed)


def test_ids_beginning_with_a_dash_are_read_with_their_metadata(huberman: LibrarySource) -> None:
    (video,) = [v for v in huberman.videos_published_on(date(2023, 12, 28)) if v.video_id == DASH_ID]
    assert video.title.startswith("Dr. Matt Walker: The Biology of Sleep")
    assert video.published_at == datetime(2023, 12, 28, tzinfo=UTC)
    assert video.duration_s == 2096.0
    assert video.channel == "Huberman Lab"
    assert video.channel_id == "UC2D2CMWXMOVWx7giW1n3LIg"
    assert video.language == "en"
    assert video.url == f"https://www.youtube.com/watch?v={DASH_ID}"
    assert [p.name for p in video.caption_files] == [f"{DASH_ID}.en.srt"]


def test_real_srt_and_vtt_captions_are_read_as_library_files(huberman: LibrarySource) -> None:
    for video_id, ext in ((DASH_ID, "srt"), (VTT_ID, "vtt")):
        video = huberman.video(video_id)
        assert video is not None
        track = huberman.fetch_captions(video)
        assert track.source == "library_file"
        assert track.language == "en"
        assert track.origin.endswith(f"{video_id}.en.{ext}")
        assert len(track.cues) > 50
        assert all(c.end >= c.start for c in track.cues)
    assert "Huberman" in huberman.fetch_captions(huberman.video(VTT_ID)).cues[0].text


def test_a_day_without_videos_is_empty(huberman: LibrarySource) -> None:
    assert huberman.videos_published_on(date(1999, 1, 1)) == []


def test_the_folder_is_scanned_once_per_source_instance(tmp_path: Path) -> None:
    _copy_video(DASH_ID, tmp_path)
    source = LibrarySource(tmp_path)
    assert source.publish_dates() == {date(2023, 12, 28)}
    _info(tmp_path, "added_later", upload_date="20231228")
    # The index is built once: later calls (one per partition in a backfill) do not re-walk the folder.
    assert [v.video_id for v in source.videos_published_on(date(2023, 12, 28))] == [DASH_ID]
    assert len(LibrarySource(tmp_path).videos_published_on(date(2023, 12, 28))) == 2


def test_runs_share_one_index_of_an_unchanged_folder_and_see_a_changed_one(tmp_path: Path) -> None:
    from chaffee_assets.defs.resources import VideoSourceResource

    _copy_video(DASH_ID, tmp_path)
    # Each run builds its resources anew: the second run's source is the first's, already indexed.
    first = VideoSourceResource(library_dir=str(tmp_path)).get()
    assert first.publish_dates() == {date(2023, 12, 28)}
    assert VideoSourceResource(library_dir=str(tmp_path)).get() is first
    # A file added, or one rewritten, is seen by the next run.
    _info(tmp_path, "added_later", upload_date="20231228")
    second = VideoSourceResource(library_dir=str(tmp_path)).get()
    assert second is not first
    assert len(second.videos_published_on(date(2023, 12, 28))) == 2
    _info(tmp_path, "added_later", upload_date="20240105", title="moved to another day")
    third = LibrarySource.shared(tmp_path)
    assert third is not second
    assert third.publish_dates() == {date(2023, 12, 28), date(2024, 1, 5)}


def test_returned_videos_are_copies(tmp_path: Path) -> None:
    _copy_video(DASH_ID, tmp_path)
    source = LibrarySource(tmp_path)
    source.videos_published_on(date(2023, 12, 28))[0].tags.append("changed")
    assert source.videos_published_on(date(2023, 12, 28))[0].tags == []


# -- broken libraries --------------------------------------------------------------------------


def test_a_truncated_info_json_is_skipped_with_its_file_named_and_others_still_listed(tmp_path: Path) -> None:
    _copy_video(DASH_ID, tmp_path)
    (tmp_path / "brokenInfo1.info.json").write_text(
        '{"id": "brokenInfo1", "title": "cut of', encoding="utf-8"
    )
    (tmp_path / "brokenInfo1.en.vtt").write_text(
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhi\n", encoding="utf-8"
    )
    source = LibrarySource(tmp_path)

    assert [v.video_id for v in source.videos_published_on(date(2023, 12, 28))] == [DASH_ID]
    (skipped,) = source.skipped()
    assert skipped.video_id == "brokenInfo1"
    assert "brokenInfo1.info.json" in skipped.reason and "not valid JSON" in skipped.reason


def test_an_info_json_without_any_date_is_skipped_with_the_reason(tmp_path: Path) -> None:
    _copy_video(DASH_ID, tmp_path)
    path = tmp_path / "noDateVid01.info.json"
    path.write_text(json.dumps({"id": "noDateVid01", "title": "When?"}), encoding="utf-8")
    source = LibrarySource(tmp_path)

    assert source.publish_dates() == {date(2023, 12, 28)}
    (skipped,) = source.skipped()
    assert skipped.path == path
    assert "no date" in skipped.reason and "upload_date" in skipped.reason


def test_a_recording_without_info_json_is_skipped_with_what_to_add(tmp_path: Path) -> None:
    shutil.copy(shared_path("realdata", "audio", "whisper", "jfk.flac"), tmp_path / "zoom_2024_01_05.flac")
    source = LibrarySource(tmp_path)

    assert source.publish_dates() == set()
    (skipped,) = source.skipped()
    assert skipped.video_id == "zoom_2024_01_05"
    assert "zoom_2024_01_05.info.json" in skipped.reason and "upload_date" in skipped.reason


def test_an_imported_recording_with_a_minimal_info_json_is_listed_with_its_audio(tmp_path: Path) -> None:
    shutil.copy(shared_path("realdata", "audio", "whisper", "jfk.flac"), tmp_path / "zoom_2024_01_05.flac")
    (tmp_path / "zoom_2024_01_05.info.json").write_text(
        json.dumps({"title": "Q&A on Zoom", "upload_date": "20240105"}), encoding="utf-8"
    )
    (video,) = LibrarySource(tmp_path).videos_published_on(date(2024, 1, 5))
    assert video.video_id == "zoom_2024_01_05"  # the id comes from the file name when the info has none
    assert video.audio_file == tmp_path / "zoom_2024_01_05.flac"


def test_a_channel_info_dict_in_the_library_is_skipped_not_listed(tmp_path: Path) -> None:
    shutil.copy(
        shared_path("realdata", "ytdlp_info", "pinchflat__channel_source_metadata.json"),
        tmp_path / "PinchflatTestChannel.info.json",
    )
    source = LibrarySource(tmp_path)
    assert source.publish_dates() == set()
    assert "playlist info dict" in source.skipped()[0].reason


def test_an_info_json_whose_id_disagrees_with_its_name_is_skipped(tmp_path: Path) -> None:
    _info(tmp_path, "nameOnDisk1", id="otherId0001")
    (tmp_path / "nameOnDisk1.info.json").write_text(
        json.dumps({"id": "otherId0001", "title": "t", "upload_date": "20240102"}), encoding="utf-8"
    )
    source = LibrarySource(tmp_path)
    assert source.publish_dates() == set()
    assert "otherId0001" in source.skipped()[0].reason


def test_a_garbage_caption_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    _info(tmp_path, "garbageVtt1")
    (tmp_path / "garbageVtt1.en.vtt").write_bytes(b"\x00\x01 this is not WEBVTT at all \xff\xfe")
    source = LibrarySource(tmp_path)
    (video,) = source.videos_published_on(date(2024, 1, 2))

    with pytest.raises(TranscriptFailure) as failure:
        source.fetch_captions(video)
    assert failure.value.failure_class is FailureClass.ERROR
    assert "garbageVtt1.en.vtt" in failure.value.message
    assert "garbageVtt1" in failure.value.message


def test_a_broken_best_caption_file_falls_back_to_the_next_one(tmp_path: Path) -> None:
    _info(tmp_path, "twoFiles001")
    (tmp_path / "twoFiles001.en.vtt").write_text("not a caption file", encoding="utf-8")
    shutil.copy(
        shared_path("eval", "huberman_dev", "library", f"{DASH_ID}.en.srt"), tmp_path / "twoFiles001.en.srt"
    )
    source = LibrarySource(tmp_path)
    track = source.fetch_captions(source.video("twoFiles001"))
    assert track.origin.endswith("twoFiles001.en.srt")


def test_a_video_without_caption_files_has_no_captions(tmp_path: Path) -> None:
    _info(tmp_path, "noCaptions1")
    source = LibrarySource(tmp_path)
    with pytest.raises(TranscriptFailure) as failure:
        source.fetch_captions(source.video("noCaptions1"))
    assert failure.value.failure_class is FailureClass.NO_CAPTIONS
    assert "noCaptions1" in failure.value.message


def test_live_chat_files_are_not_captions(tmp_path: Path) -> None:
    _info(tmp_path, "liveChat001")
    (tmp_path / "liveChat001.live_chat.json").write_text('{"replayChatItemAction": {}}\n', encoding="utf-8")
    source = LibrarySource(tmp_path)
    assert source.video("liveChat001").caption_files == []
    with pytest.raises(TranscriptFailure) as failure:
        source.fetch_captions(source.video("liveChat001"))
    assert failure.value.failure_class is FailureClass.NO_CAPTIONS


def test_english_manual_captions_are_chosen_over_auto_and_other_languages(tmp_path: Path) -> None:
    # yt-dlp names manual and auto captions alike; the info.json says which languages were which.
    _info(
        tmp_path,
        "pickTrack01",
        subtitles={"de": [], "en-US": []},
        automatic_captions={"en": [], "en-orig": [], "de": []},
    )
    for lang in ("de", "en", "en-orig", "en-US"):
        (tmp_path / f"pickTrack01.{lang}.vtt").write_text("WEBVTT\n", encoding="utf-8")
    source = LibrarySource(tmp_path)
    names = [p.name for p in source.video("pickTrack01").caption_files]
    assert names[0] == "pickTrack01.en-US.vtt"  # manual English
    assert names[-1] == "pickTrack01.de.vtt"  # other languages last
    assert set(names[1:3]) == {"pickTrack01.en.vtt", "pickTrack01.en-orig.vtt"}  # auto English


def test_without_caption_lists_in_the_info_plain_en_comes_first(tmp_path: Path) -> None:
    _info(tmp_path, "plainLang01")
    for name in ("plainLang01.es.srt", "plainLang01.en-GB.srt", "plainLang01.en.srt", "plainLang01.json"):
        (tmp_path / name).write_text("", encoding="utf-8")
    names = [p.name for p in LibrarySource(tmp_path).video("plainLang01").caption_files]
    assert names == ["plainLang01.en.srt", "plainLang01.json", "plainLang01.en-GB.srt", "plainLang01.es.srt"]


def test_caption_files_with_no_text_mean_no_captions(tmp_path: Path) -> None:
    _info(tmp_path, "emptyVtt001")
    (tmp_path / "emptyVtt001.en.vtt").write_text("WEBVTT\n\n", encoding="utf-8")
    source = LibrarySource(tmp_path)
    with pytest.raises(TranscriptFailure) as failure:
        source.fetch_captions(source.video("emptyVtt001"))
    assert failure.value.failure_class is FailureClass.NO_CAPTIONS


def test_audio_is_handed_out_as_a_link_the_caller_may_delete(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    _info(library, "withAudio01")
    shutil.copy(shared_path("realdata", "audio", "whisper", "jfk.flac"), library / "withAudio01.flac")
    source = LibrarySource(library)

    got = source.fetch_audio(source.video("withAudio01"), tmp_path / "work")
    assert got.parent == tmp_path / "work"
    assert got.read_bytes() == (library / "withAudio01.flac").read_bytes()
    got.unlink()
    assert (library / "withAudio01.flac").exists()


def test_a_video_without_audio_is_unavailable_with_what_to_add(tmp_path: Path) -> None:
    _info(tmp_path, "noAudio0001")
    source = LibrarySource(tmp_path)
    with pytest.raises(TranscriptFailure) as failure:
        source.fetch_audio(source.video("noAudio0001"), tmp_path / "work")
    assert failure.value.failure_class is FailureClass.UNAVAILABLE
    assert "noAudio0001.m4a" in failure.value.message


def test_a_video_known_only_by_its_row_uses_the_files_it_carries(tmp_path: Path) -> None:
    srt = shared_path("eval", "huberman_dev", "library", f"{DASH_ID}.en.srt")
    video = Video(video_id="elsewhere01", source="library", title="t", published_at=None, caption_files=[srt])
    track = LibrarySource(tmp_path).fetch_captions(video)
    assert track.language == "en" and track.cues


def test_a_missing_library_folder_says_which_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        LibrarySource(tmp_path / "does-not-exist").publish_dates()
