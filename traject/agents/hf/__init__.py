"""Local Hugging Face transformers models: the HF policy and the locally built tiny model.

Importing this package imports torch and transformers.
"""

from traject.agents.hf.batcher import MicroBatcher
from traject.agents.hf.policy import HFPolicy, HFPolicyConfig
from traject.agents.hf.sampling import SampleRequest, SampleResult, SamplingParams, sample_batch
from traject.agents.hf.templates import TEMPLATES, get_template
from traject.agents.hf.tiny import TinySpec, build_tiny_causal_lm, build_tiny_model, build_tiny_tokenizer

__all__ = ["TEMPLATES", "HFPolicy", "HFPolicyConfig", "MicroBatcher", "SampleRequest", "SampleResult",
           "SamplingParams", "TinySpec", "build_tiny_causal_lm", "build_tiny_model", "build_tiny_tokenizer",
           "get_template", "sample_batch"]
