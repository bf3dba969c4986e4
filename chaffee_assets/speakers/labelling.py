"""Who speaks when in one recording, given voice profiles: turns of enrolled names or `other`.

How (docs/speakers.md measures each step):
1. Voice activity first: silence gets no turn and no window.
2. Speaker vectors for windows of 1.6 s every `hop_s` over the voiced time (one mel spectrogram for
   the whole recording, windows sliced from it).
3. With one profile, first the recording's own sure-host and sure-other windows (the others grouped
   into voices): each window goes to the nearest, which carries the room's or line's channel.
   Otherwise the recording's own windows clustered (average linkage on cosine distance): a voice is judged by
   the centroid of all its windows, which is far steadier than any single window, so the threshold
   adapts to the recording instead of being one fixed number for every window.
4. A cluster whose centroid is close enough to a profile is that person; a window far from its
   cluster's verdict keeps its own.
5. Smoothing over time: each voiced frame takes the windows around it, weighted by closeness, then
   a median over `smooth_s`; flips shorter than `min_turn_s` join their neighbours; a stretch
   shorter than `fragment_s` set apart by pauses takes the speaker of the turns on both sides; turns
   reach `edge_s` into the silence around them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chaffee_assets.speakers.encoder import CAMPPLUS_MODEL, FRAME_S, SAMPLE_RATE, VoiceEncoder
from chaffee_assets.speakers.vad import runs, voiced_frames

OTHER = "other"
TARGET_DBFS = -30.0  # the loudness the default encoder was trained at
MIN_PROFILE_SPEECH_S = 8.0  # below this a profile is too thin to tell a voice by


class SpeakerInputError(ValueError):
    """A recording or profile the labeller cannot use (unreadable, silent, too short, no host)."""


@dataclass(frozen=True)
class Profile:
    """An enrolled voice: the unit mean of its speech's window vectors under one model."""

    name: str
    is_host: bool
    vector: np.ndarray
    model: str
    speech_s: float


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str  # an enrolled name or OTHER
    confidence: float  # 0.5 = a coin toss, 1.0 = certain

    def as_json(self) -> dict[str, object]:
        return {
            "start_s": round(self.start_s, 2),
            "end_s": round(self.end_s, 2),
            "speaker": self.speaker,
            "confidence": round(self.confidence, 3),
        }


@dataclass(frozen=True)
class Labelling:
    turns: list[Turn]
    host: str | None  # the host's name when a host profile was given
    duration_s: float
    voiced_s: float
    model: str

    @property
    def host_share(self) -> float | None:
        """The host's share of the time anyone speaks (None when no host profile was given or
        nothing is voiced). Measured on the turns, which reach a little into the silence around
        them, so everyone's speech is counted alike."""
        if self.host is None or self.voiced_s <= 0:
            return None
        spoken = sum(t.end_s - t.start_s for t in self.turns if t.speaker == self.host)
        everyone = sum(t.end_s - t.start_s for t in self.turns)
        return min(1.0, spoken / everyone) if everyone > 0 else None

    def as_json(self) -> dict[str, object]:
        share = self.host_share
        return {
            "turns": [t.as_json() for t in self.turns],
            "host_share": None if share is None else round(share, 4),
        }


@dataclass(frozen=True)
class LabelParams:
    """The labeller's knobs; the defaults are the ones docs/speakers.md measured."""

    hop_s: float = 0.8
    cluster_distance: float = 0.3  # average-linkage cut: windows of one voice sit closer than this
    cluster_threshold: float = 0.80  # a cluster centroid this close to a profile is that person
    window_threshold: float = 0.62  # a lone window (its cluster too small to trust) by itself
    min_cluster_s: float = 4.0  # clusters with less speech than this are judged window by window
    smooth_s: float = 1.0
    min_turn_s: float = 1.0
    vad_aggressiveness: int = 1  # WebRTC's 0 (hears most as speech) to 3
    bridge_s: float = 1.0  # a pause this short between two stretches of one speaker stays inside the turn
    # A stretch of speech this short, set apart by pauses, is judged by the turns around it: one
    # window says little about a voice, two turns of one speaker on both sides say much.
    fragment_s: float = 1.5
    fragment_gap_s: float = 2.0  # the longest pause between a fragment and what surrounds it
    edge_s: float = (
        0.2  # turns reach this far into the silence around them (the detector clips soft onsets and tails)
    )
    max_cluster_windows: int = 1500  # longer recordings are clustered in pieces of this many windows
    # Adapting to the recording's channel: windows surely the host (own similarity >= sure_host) and
    # surely not (<= sure_other) give in-recording means; every window then goes to the nearest,
    # the sure-other windows grouped into voices first.
    refine: bool = True
    sure_host: float = 0.80
    sure_other: float = 0.70
    min_sure_windows: int = 3
    min_group_gap: float = 0.1  # how much further than the sure-host group the sure-other group sits
    other_voice_distance: float = 0.2  # sure-other windows closer than this are one voice
    min_other_voice_windows: int = 2
    confidence_scale: float = 0.03  # a margin this large between the two best scores is 73 % sure

    @classmethod
    def for_model(cls, model: str) -> LabelParams:
        """The defaults, with the similarity thresholds in the named voice model's own scale."""
        return cls(**MODEL_THRESHOLDS.get(model, {}))


# Each voice model spreads cosine similarity differently. Resemblyzer's windows of one voice sit
# near 0.84 to their profile and other voices' near 0.54 (medians on the tuning recordings, seed 7);
# the defaults above are in its scale. CAM++'s sit near 0.71 and 0.07, and in a far-field meeting its
# host windows fall to about 0.56 while other voices stay near 0.1: its distances are Resemblyzer's
# mapped through the medians (window-to-window 0.26 -> 0.46, 0.55 -> 0.96), and its decision
# thresholds were then set on seed 7 and the AMI pairs (docs/speakers.md), well below the mapped
# 0.62, where the far-field host still clears them and other voices do not.
MODEL_THRESHOLDS: dict[str, dict[str, float]] = {
    CAMPPLUS_MODEL: {
        "cluster_distance": 0.53,
        "cluster_threshold": 0.30,
        "window_threshold": 0.20,
        "sure_host": 0.40,
        "sure_other": 0.20,
        "min_group_gap": 0.21,
        "other_voice_distance": 0.36,
        "confidence_scale": 0.064,
    },
}


def as_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.int16:
        return np.multiply(samples, 1 / 32768.0, dtype=np.float32)
    return samples.astype(np.float32, copy=False)


def normalise_loudness(samples: np.ndarray, voiced: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Samples scaled so the voiced part sits at TARGET_DBFS (in `samples` itself when `in_place`:
    an hour of float32 samples is 230 MB)."""
    per_frame = int(SAMPLE_RATE * FRAME_S)
    whole = min(len(voiced), len(samples) // per_frame)
    # Energy per 10 ms frame (no copy of the recording, nor a mask as long as it).
    frames = samples[: whole * per_frame].reshape(whole, per_frame)
    energy = np.einsum("ij,ij->i", frames, frames, dtype=np.float64)
    speech = voiced[:whole]
    if speech.any():
        power = float(energy[speech].sum()) / (int(speech.sum()) * per_frame)
    else:
        power = float(np.mean(samples.astype(np.float64) ** 2)) if len(samples) else 0.0
    if power <= 1e-12:
        return samples
    gain = 10 ** ((TARGET_DBFS - 10 * np.log10(power)) / 20)
    return np.multiply(samples, gain, out=samples if in_place else None, dtype=np.float32)


def _fit(mask: np.ndarray, length: int) -> np.ndarray:
    """`mask` cut or padded with False to `length` (the encoder's frame count can differ by one)."""
    return np.pad(mask, (0, max(0, length - len(mask))))[:length]


def speech_windows(voiced: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Window starts (in frames) covering the voiced time: a regular grid, plus one centred on each short run."""
    total = len(voiced)
    if total == 0 or not voiced.any():
        return np.zeros(0, dtype=np.int64)
    last = max(0, total - window)
    grid = np.arange(0, last + 1, hop)
    covered = np.concatenate(([0], np.cumsum(voiced)))
    fraction = (covered[np.minimum(grid + window, total)] - covered[grid]) / window
    starts = set(grid[fraction >= 0.3].tolist())
    for start, end in runs(voiced):
        if end - start < window or not any(start <= s + window // 2 < end for s in starts):
            starts.add(int(min(last, max(0, (start + end) // 2 - window // 2))))
    return np.array(sorted(starts), dtype=np.int64)


def profile_from_samples(
    name: str,
    is_host: bool,
    recordings: list[np.ndarray],
    encoder: VoiceEncoder,
    hop_s: float = 0.4,
    min_speech_s: float = MIN_PROFILE_SPEECH_S,
) -> Profile:
    """A profile from one or more recordings of one person; too little speech is refused."""
    vectors: list[np.ndarray] = []
    speech_s = 0.0
    hop = max(1, int(round(hop_s / FRAME_S)))
    for samples in recordings:
        samples = as_float(samples)
        voiced = voiced_frames(samples)
        speech_s += float(voiced.sum()) * FRAME_S
        if not voiced.any():
            continue
        frames = encoder.frames(normalise_loudness(samples, voiced))
        starts = speech_windows(_fit(voiced, len(frames)), encoder.window_frames, hop)
        vectors.append(encoder.embed(frames, starts))
    if speech_s < min_speech_s:
        raise SpeakerInputError(
            f"only {speech_s:.1f} s of speech for {name}: a profile needs at least "
            f"{min_speech_s:.0f} s (give a longer recording, or several)"
        )
    mean = np.concatenate(vectors).mean(axis=0)
    return Profile(name, is_host, mean / np.linalg.norm(mean), encoder.name, round(speech_s, 2))


def _clusters(vectors: np.ndarray, distance: float, chunk: int) -> np.ndarray:
    """A cluster id per window: average-linkage on cosine distance, in chunks for long recordings."""
    from scipy.cluster.hierarchy import fcluster, linkage

    ids = np.zeros(len(vectors), dtype=np.int64)
    next_id = 0
    for first in range(0, len(vectors), chunk):
        part = vectors[first : first + chunk]
        if len(part) == 1:
            ids[first] = next_id
            next_id += 1
            continue
        tree = linkage(part, method="average", metric="cosine")
        local = fcluster(tree, t=distance, criterion="distance")
        ids[first : first + len(part)] = local + next_id
        next_id += int(local.max()) + 1
    return ids


def _refined_scores(vectors: np.ndarray, profile: np.ndarray, params: LabelParams) -> np.ndarray | None:
    """Scores from the recording's own sure-host and sure-other windows, when it has enough of both.

    A far-field room or a phone line moves every voice toward every other; the recording's own
    examples of the host and of the rest carry that channel, where the profile cannot. The sure
    host windows must still, as a group, be the enrolled voice (their mean within `cluster_threshold`
    of the profile), so a guest who resembles the host in a few windows is not taken for him.
    """
    own = vectors @ profile
    sure_host, sure_other = own >= params.sure_host, own <= params.sure_other
    if sure_host.sum() < params.min_sure_windows or sure_other.sum() < params.min_sure_windows:
        return None
    host_mean = _unit(vectors[sure_host].mean(axis=0))
    other_mean = _unit(vectors[sure_other].mean(axis=0))
    # In a monologue the "sure other" windows are the host's own weakest: splitting them off would
    # call the host someone else. Such a group sits nearly as close to the profile as the sure-host
    # group; another voice sits clearly further, even where a far-field room brings it to 0.80.
    if float(host_mean @ profile) - float(other_mean @ profile) < params.min_group_gap:
        return None
    # The others are often several voices (a meeting, a panel): their one mean can sit nearer one of
    # them to the host than to that voice itself. So the sure-other windows are grouped into voices,
    # and a window is the host when nearer the host's mean than every other voice's; the margin is
    # centred on the threshold the rest of the labeller compares with.
    voice_means = _voice_means(vectors[sure_other], params) or [other_mean]
    nearest_other = np.max(np.stack([vectors @ mean for mean in voice_means]), axis=0)
    margin = vectors @ host_mean - nearest_other
    chosen = margin > 0
    if not chosen.any() or float(_unit(vectors[chosen].mean(axis=0)) @ profile) < params.cluster_threshold:
        return None  # the group it would call the host is not, as a whole, the enrolled voice
    return params.cluster_threshold + margin


def _voice_means(vectors: np.ndarray, params: LabelParams) -> list[np.ndarray]:
    """Unit means of the voices among `vectors` (average linkage at `other_voice_distance`); a group
    of fewer than `min_other_voice_windows` is one stray window, not a voice."""
    ids = _clusters(vectors, params.other_voice_distance, params.max_cluster_windows)
    return [
        _unit(vectors[ids == voice].mean(axis=0))
        for voice in np.unique(ids)
        if (ids == voice).sum() >= params.min_other_voice_windows
    ]


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-8)


def _window_scores(vectors: np.ndarray, profile_matrix: np.ndarray, params: LabelParams) -> np.ndarray:
    """Per window and profile, a similarity made comparable to `cluster_threshold`."""
    own = vectors @ profile_matrix.T
    if params.refine and profile_matrix.shape[0] == 1:
        refined = _refined_scores(vectors, profile_matrix[0], params)
        if refined is not None:
            return refined[:, None]
    ids = _clusters(vectors, params.cluster_distance, params.max_cluster_windows)
    scores = own + (params.cluster_threshold - params.window_threshold)  # lone windows: their own test
    hop_count_for_min = params.min_cluster_s / params.hop_s
    for cluster in np.unique(ids):
        members = ids == cluster
        if members.sum() < hop_count_for_min:
            continue
        centroid = vectors[members].mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-8)
        scores[members] = centroid @ profile_matrix.T
    return scores


def label_samples(
    samples: np.ndarray, profiles: list[Profile], encoder: VoiceEncoder, params: LabelParams | None = None
) -> Labelling:
    """Turns of who speaks when in `samples` (16 kHz mono)."""
    params = params or LabelParams.for_model(encoder.name)
    ours = samples.dtype != np.float32  # as_float makes a copy this function may scale in place
    samples = as_float(samples)
    duration = len(samples) / SAMPLE_RATE
    host = next((p.name for p in profiles if p.is_host), None)
    voiced = voiced_frames(samples, params.vad_aggressiveness)
    if not voiced.any():
        raise SpeakerInputError("the recording holds no speech (silent, or noise only)")
    frames = encoder.frames(normalise_loudness(samples, voiced, in_place=ours))
    del samples  # our float copy: an hour of it is 230 MB, not needed past the frames
    voiced = _fit(voiced, len(frames))
    window = encoder.window_frames
    starts = speech_windows(voiced, window, max(1, int(round(params.hop_s / FRAME_S))))
    vectors = encoder.embed(frames, starts)
    usable = [p for p in profiles if p.model == encoder.name]
    names = [p.name for p in usable] + [OTHER]
    profile_matrix = np.stack([p.vector for p in usable]) if usable else np.zeros((0, vectors.shape[1]))
    choice, margin = decide(vectors, starts, voiced, window, profile_matrix, params)
    turns = []
    for start, end, label in _label_runs(choice):
        confidence = float(1 / (1 + np.exp(-np.mean(margin[start:end]) / params.confidence_scale)))
        turns.append(Turn(start * FRAME_S, min(end * FRAME_S, duration), names[label], confidence))
    return Labelling(turns, host, duration, float(voiced.sum()) * FRAME_S, encoder.name)


def decide(
    vectors: np.ndarray,
    starts: np.ndarray,
    voiced: np.ndarray,
    window: int,
    profile_matrix: np.ndarray,
    params: LabelParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame, the index of the profile speaking (len(profiles) for `other`, -1 for silence),
    and the margin between the winning and the next score (how sure)."""
    total = len(voiced)
    if len(profile_matrix):
        scores = _window_scores(vectors, profile_matrix, params)
    else:
        scores = np.zeros((len(starts), 0), dtype=np.float32)
    # The "other" column: a window is someone else unless a profile clears the threshold.
    scores = np.concatenate([scores, np.full((len(starts), 1), params.cluster_threshold)], axis=1)
    frame_scores = _spread_to_frames(scores, starts, window, total, params)
    choice = frame_scores.argmax(axis=1)
    choice[~voiced] = -1
    choice = _drop_short_flips(choice, int(round(params.min_turn_s / FRAME_S)))
    bridge = int(round(params.bridge_s / FRAME_S))
    choice = _bridge_pauses(choice, bridge)
    # Fragments are judged once a turn's own short pauses are bridged, then their pauses are too.
    choice = _absorb_fragments(
        choice, int(round(params.fragment_s / FRAME_S)), int(round(params.fragment_gap_s / FRAME_S))
    )
    choice = _bridge_pauses(choice, bridge)
    choice = _pad_turns(choice, int(round(params.edge_s / FRAME_S)))
    margin = np.sort(frame_scores, axis=1)
    margin = margin[:, -1] - margin[:, -2] if margin.shape[1] > 1 else np.ones(total)
    return choice, margin


def _spread_to_frames(
    scores: np.ndarray, starts: np.ndarray, window: int, total: int, params: LabelParams
) -> np.ndarray:
    """Per-frame scores: a triangular-weighted mean of the windows covering each frame, then a running median."""
    weight = 1.0 - np.abs(np.arange(window) - (window - 1) / 2) / (window / 2)
    summed = np.zeros((total + window, scores.shape[1]))
    weights = np.zeros(total + window)
    for index, start in enumerate(starts):
        summed[start : start + window] += weight[:, None] * scores[index]
        weights[start : start + window] += weight
    summed, weights = summed[:total], weights[:total]
    covered = weights > 0
    out = np.zeros((total, scores.shape[1]))
    out[covered] = summed[covered] / weights[covered][:, None]
    if not covered.all() and covered.any():  # frames beyond every window take the nearest covered one
        nearest = np.maximum.accumulate(np.where(covered, np.arange(total), 0))
        out[~covered] = out[nearest[~covered]]
    width = max(1, int(round(params.smooth_s / FRAME_S)))
    if width > 1 and total > width:
        from scipy.ndimage import median_filter

        out = median_filter(out, size=(width, 1), mode="nearest")
    return out


def _drop_short_flips(choice: np.ndarray, min_frames: int) -> np.ndarray:
    """Voiced runs of one label shorter than `min_frames`, between voiced runs of another, take the longer neighbour."""
    out = choice.copy()
    labelled = _label_runs(out)
    for index, (start, end, _) in enumerate(labelled):
        if end - start >= min_frames:
            continue
        before = labelled[index - 1] if index > 0 and labelled[index - 1][1] == start else None
        after = labelled[index + 1] if index + 1 < len(labelled) and labelled[index + 1][0] == end else None
        neighbours = [n for n in (before, after) if n is not None]
        if neighbours:
            out[start:end] = max(neighbours, key=lambda n: n[1] - n[0])[2]
    return out


def _absorb_fragments(choice: np.ndarray, max_frames: int, max_gap: int) -> np.ndarray:
    """Short stretches set apart by pauses take the speaker of the turns on both sides.

    A chain of stretches each shorter than `max_frames`, linked by pauses of at most `max_gap`,
    with a longer turn of one speaker at each end (each within `max_gap`), becomes that speaker's.
    A chain with a turn on one side only (the recording's start or end) keeps its own labels: a
    caller's first words before the host answers are just such a stretch.
    """
    out = choice.copy()
    labelled = _label_runs(out)
    index = 0
    while index < len(labelled):
        if labelled[index][1] - labelled[index][0] >= max_frames:
            index += 1
            continue
        last = index  # the chain of short stretches: labelled[index : last + 1]
        while (
            last + 1 < len(labelled)
            and labelled[last + 1][1] - labelled[last + 1][0] < max_frames
            and labelled[last + 1][0] - labelled[last][1] <= max_gap
        ):
            last += 1
        before = labelled[index - 1] if index > 0 else None
        after = labelled[last + 1] if last + 1 < len(labelled) else None
        if (
            before is not None
            and after is not None
            and before[2] == after[2]
            and labelled[index][0] - before[1] <= max_gap
            and after[0] - labelled[last][1] <= max_gap
        ):
            for start, end, _ in labelled[index : last + 1]:
                out[start:end] = before[2]
        index = last + 1
    return out


def _bridge_pauses(choice: np.ndarray, max_frames: int) -> np.ndarray:
    """Silences of at most `max_frames` between two runs of the same speaker become part of the turn:
    the detector hears a breath or a stop consonant as silence, a listener hears one turn."""
    out = choice.copy()
    labelled = _label_runs(out)
    for before, after in zip(labelled, labelled[1:], strict=False):
        if before[2] == after[2] and 0 < after[0] - before[1] <= max_frames:
            out[before[1] : after[0]] = before[2]
    return out


def _pad_turns(choice: np.ndarray, frames: int) -> np.ndarray:
    """Each turn reaches up to `frames` into the silence on either side, never into another turn."""
    out = choice.copy()
    if frames <= 0:
        return out
    for start, end, label in _label_runs(choice):
        first = start
        while first > 0 and start - first < frames and out[first - 1] == -1:
            first -= 1
        last = end
        while last < len(out) and last - end < frames and out[last] == -1:
            last += 1
        out[first:last] = label
    return out


def _label_runs(choice: np.ndarray) -> list[tuple[int, int, int]]:
    """[start, end, label) runs of equal non-negative labels (-1 is silence)."""
    if len(choice) == 0:
        return []
    edges = np.flatnonzero(np.diff(choice)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(choice)]))
    labels = choice[starts]
    keep = labels >= 0
    return [
        (int(start), int(end), int(label))
        for start, end, label in zip(starts[keep], ends[keep], labels[keep], strict=True)
    ]
