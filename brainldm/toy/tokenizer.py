"""Word-level tokenizer of the toy world's captions.

The toy text encoder reads captions through a word-level vocabulary built from
:data:`brainldm.datasets.scenes.VOCABULARY` instead of CLIP's byte-pair
encoding: the toy world has a few dozen words, so every word is one token.
The tokenizer is saved as a ``PreTrainedTokenizerFast`` so that
``transformers.AutoTokenizer`` and diffusers' pipeline loader restore it with
its vocabulary. (Saved under the ``CLIPTokenizer`` class name instead, it
would load without error and map every word to the unknown token.)
"""

import json
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

__all__ = [
    "build_tokenizer",
    "save_tokenizer",
]

_PAD_TOKEN = "<|pad|>"
_UNK_TOKEN = "<|unk|>"
_BOS_TOKEN = "<|startoftext|>"
_EOS_TOKEN = "<|endoftext|>"
_SPECIAL_TOKENS = (_PAD_TOKEN, _UNK_TOKEN, _BOS_TOKEN, _EOS_TOKEN)

# CLIP's text model pools at the end-of-text token; 77 positions as in SD's
# CLIP text encoder, so prompts are padded exactly as for real SD.
_MODEL_MAX_LENGTH = 77


def build_tokenizer(vocabulary=None, model_max_length=_MODEL_MAX_LENGTH):
    """Build the word-level tokenizer of the toy captions.

    Captions are lower-cased and split on white space and punctuation; each
    word maps to one id, unknown words to ``<|unk|>``. Every encoding starts
    with ``<|startoftext|>`` and ends with ``<|endoftext|>``, as CLIP's does.

    Parameters
    ----------
    vocabulary : sequence of str, default=None
        Words of the captions. ``None`` uses
        :data:`brainldm.datasets.scenes.VOCABULARY`.
    model_max_length : int, default=77
        Number of positions prompts are padded or truncated to.

    Returns
    -------
    tokenizer : transformers.PreTrainedTokenizerFast
        Ids 0-3 are the pad, unknown, start and end tokens; words follow in
        the order of ``vocabulary``.

    Examples
    --------
    >>> from brainldm.toy.tokenizer import build_tokenizer
    >>> tokenizer = build_tokenizer(["a", "red", "circle"])
    >>> tokenizer("A red circle").input_ids
    [2, 4, 5, 6, 3]
    >>> tokenizer("a blue circle").input_ids
    [2, 4, 1, 6, 3]
    """
    if vocabulary is None:
        from brainldm.datasets.scenes import VOCABULARY as vocabulary
    words = list(dict.fromkeys(vocabulary))
    clashes = sorted(set(words) & set(_SPECIAL_TOKENS))
    if clashes:
        raise ValueError(
            f"vocabulary must not contain the special tokens {clashes}; remove them, they are "
            "added by build_tokenizer"
        )
    vocab = {token: i for i, token in enumerate(_SPECIAL_TOKENS + tuple(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=_UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{_BOS_TOKEN} $A {_EOS_TOKEN}",
        special_tokens=[(_BOS_TOKEN, vocab[_BOS_TOKEN]), (_EOS_TOKEN, vocab[_EOS_TOKEN])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=_BOS_TOKEN,
        eos_token=_EOS_TOKEN,
        pad_token=_PAD_TOKEN,
        unk_token=_UNK_TOKEN,
        model_max_length=model_max_length,
    )


def save_tokenizer(tokenizer, folder):
    """Save ``tokenizer`` so that it loads as a ``PreTrainedTokenizerFast``.

    Recent transformers versions record the class as ``TokenizersBackend``,
    which older versions do not know; the generic fast-tokenizer name loads
    in both.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        Tokenizer from :func:`build_tokenizer`.
    folder : str or path-like
        Output folder, created if needed.

    Returns
    -------
    folder : pathlib.Path
        The folder written.

    Examples
    --------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> from brainldm.toy.tokenizer import build_tokenizer, save_tokenizer
    >>> tokenizer = build_tokenizer(["a", "red", "circle"])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = AutoTokenizer.from_pretrained(save_tokenizer(tokenizer, tmp))
    >>> loaded("a red circle").input_ids
    [2, 4, 5, 6, 3]
    """
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder
