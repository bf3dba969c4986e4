"""Speech recognition for videos without captions: local faster-whisper and OpenAI, a budget and a policy.

Importing this package loads neither faster-whisper nor openai; each engine imports its library when
it is first used.
"""

from chaffee_assets.transcription.engine import ENGINES, LOCAL_WHISPER, OPENAI, Transcriber, Transcription
from chaffee_assets.transcription.policy import choose_engine

__all__ = ["ENGINES", "LOCAL_WHISPER", "OPENAI", "Transcriber", "Transcription", "choose_engine"]
