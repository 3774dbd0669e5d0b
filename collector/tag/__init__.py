"""Tag stage: attach account, retention class, model and firmware to each observation."""

from collector.tag.tagger import Tagger

__all__ = ["Tagger"]
