"""A tiny llama-architecture GGUF for protocol tests against llama.cpp's ``llama-server``.

``write(path)`` takes about half a second and writes about 0.9 MB with llama.cpp's own ``gguf``
writer; the same seed gives the same bytes. The model is 2 layers of width 64 with random
weights plus a few hand-set ones, so it behaves like a very dumb agent, the same way every time:

- no tools in the request: printable garbage until ``max_tokens`` or a full context
  (``finish_reason: "length"``), never an end of text;
- tools offered, no tool result yet: one well-formed tool call (``"tool_calls"``), its string
  arguments ``""``;
- a tool result in the context: the content ``"Done."`` (``"stop"``).

How (no training): hidden dimension 0 of every embedding is a constant that works as a bias after
RMSNorm (printable tokens are preferred, end of text is not); three attention heads of layer 0
find a ``<tools>``, a ``<tool_response>`` and a ``<tool_call>`` token anywhere in the context and
raise flags the output matrix reads; bigram weights make ``<tool_call>`` be followed by a newline
(llama-server's lazy tool-call grammar starts on ``<tool_call>\\n``) and ``</tool_call>`` and
``Done.`` by the end of text. The vocabulary is GPT-2 style byte-level BPE (all 256 bytes, so any
text tokenizes) with merges learnt here from a word list and the tool preamble, so a request with
one tool is about 180 tokens. The chat template is Qwen2.5-style ChatML with tools, which
``llama-server --jinja`` reads as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import gguf
import numpy as np

__all__ = ["EOS_TOKEN", "write"]

EOS_TOKEN = "<|im_end|>"
CHAT_TEMPLATE = r"""{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- else %}{{- 'You are a test model.' }}{%- endif %}
{{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
{%- for tool in tools %}{{- "\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within tool_call XML tags, like: {\"name\": <function-name>, \"arguments\": <args-json-object>}<|im_end|>\n" }}
{%- else %}
{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}{%- endif %}
{%- endif %}
{%- for message in messages %}
{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant' and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>' + message.role }}
{%- if message.content %}{{- '\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\n<tool_call>\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' }}{{- message.content }}{{- '\n</tool_response>' }}
{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""  # noqa: E501 - a Jinja template, kept as the server reads it

_WORDS = (
    "hello world the and you are is it to of in that for on with as this be at by from or an not have "
    "was but what all were when we there can your which their said if do will each about how up out "
    "them then she many some so these would other into has more her two like him see time could no "
    "make than first been its who now people my made over did down only way find use may water long "
    "little very after words called just where most know get through back much before go good new "
    "write our used me man too any day same right look think also around another came come work "
    "three word must because does part even place well such here take why things help put years "
    "different away again off went old number great tell men say small every found still between "
    "name should home big give air line set own under read last never us left end along while might "
    "next sound below saw something thought both few those always looked show large often together "
    "asked house don going want school important until form food keep children feet land side "
    "without boy once animals life enough took sometimes four head above kind began almost live page "
    "got earth need far hand high year mother light parts country father let night following picture "
    "being study second eyes soon times story boys since white days ever paper hard near sentence "
    "better best across during today others however sure means knew try told young miles sun ways "
    "thing whole hear example heard several change answer room sea against top turned learn point "
    "city play toward five using himself usually tool call function name arguments weather json true "
    "false null test model status build deploy thread slack github stripe customer invoice"
).split()
_PREAMBLE = """You are a test model.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
{"type": "function", "function": {"name": "ping", "description": "No-argument tool", "parameters": {"type": "object", "properties": {}}}}
{"type": "integer"} {"type": "number"} {"type": "boolean"} {"type": "array", "items": {}} {"enum": []}
</tools>

For each function call, return a json object with function name and arguments within tool_call XML tags, like: {"name": <function-name>, "arguments": <args-json-object>}
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris"}}
</tool_call>
<tool_response>
</tool_response>
"""  # noqa: E501 - the text the merges are learnt from
_CORPUS = " ".join(_WORDS) + " " + " ".join(_WORDS).capitalize() + "\n" + _PREAMBLE
_PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
_SPECIALS = (
    ("<|endoftext|>", gguf.TokenType.CONTROL),
    ("<|im_start|>", gguf.TokenType.CONTROL),
    (EOS_TOKEN, gguf.TokenType.CONTROL),
    ("<tool_call>", gguf.TokenType.USER_DEFINED),
    ("</tool_call>", gguf.TokenType.USER_DEFINED),
    ("<tools>", gguf.TokenType.USER_DEFINED),
    ("<tool_response>", gguf.TokenType.USER_DEFINED),
    ("Done.", gguf.TokenType.NORMAL),  # the final answer; no input text tokenizes to it
)
# Hidden dimensions the hand-set weights use; every other one is noise.
(_BIAS, _IS_CALL, _IS_CALL_END, _IS_TOOLS, _IS_RESULT, _IS_DONE, _SEEN_TOOLS, _SEEN_RESULT, _IN_CALL) = range(
    9
)
_CIRCUIT = 9
_LAYERS, _WIDTH, _HEADS, _FFN, _TRAINED_CONTEXT, _PRINTABLE_BIAS = 2, 64, 4, 128, 4096, 3.0


def write(path: Path, *, seed: int = 1234) -> None:
    """Write the model to ``path`` (see the module docstring for what it does)."""
    vocab = _Vocab()
    rng = np.random.default_rng(seed)
    embeddings, output, layers = _random_weights(rng, len(vocab.tokens), vocab.printable)
    _set_circuit(vocab.specials, embeddings, output, layers[0])
    _save(path, vocab, embeddings, output, layers)


class _Vocab:
    """Byte-level BPE: the 256 byte tokens (id = byte), learnt merges, then the special tokens."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.types: list[int] = []
        self.printable: list[bool] = []
        index: dict[str, int] = {}
        to_text = _bytes_to_unicode()
        from_text = {char: byte for byte, char in to_text.items()}
        for byte in range(256):
            index[to_text[byte]] = self._add(to_text[byte], gguf.TokenType.NORMAL, 0x20 <= byte <= 0x7E)
        self.merges = []
        for left, right in _train_bpe(_CORPUS, to_text, 2000):
            self.merges.append(f"{left} {right}")
            if left + right not in index:
                good = all(0x20 <= from_text[char] <= 0x7E for char in left + right)
                index[left + right] = self._add(left + right, gguf.TokenType.NORMAL, good)
        self.specials = {token: self._add(token, kind, False) for token, kind in _SPECIALS}

    def _add(self, token: str, kind: int, printable: bool) -> int:
        self.tokens.append(token)
        self.types.append(kind)
        self.printable.append(printable)
        return len(self.tokens) - 1


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible mapping of bytes to printable characters."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = visible[:], 0
    for byte in range(256):
        if byte not in visible:
            visible.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(visible, chars, strict=True)}


def _train_bpe(text: str, to_text: dict[int, str], max_merges: int) -> list[tuple[str, str]]:
    """Plain byte-level BPE training: the most frequent pair first, ties broken by the pair."""
    words = Counter("".join(to_text[b] for b in piece.encode()) for piece in _PRETOKENIZE.findall(text))
    sequences, counts = [list(word) for word in words], list(words.values())
    pairs: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for i, sequence in enumerate(sequences):
        for pair in zip(sequence, sequence[1:], strict=False):
            pairs[pair] += counts[i]
            where[pair].add(i)
    merges: list[tuple[str, str]] = []
    while pairs and len(merges) < max_merges:
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        for i in list(where[best]):
            _merge(sequences, i, best, counts[i], pairs, where)
    return merges


def _merge(
    sequences: list[list[str]],
    i: int,
    best: tuple[str, str],
    count: int,
    pairs: Counter[tuple[str, str]],
    where: defaultdict[tuple[str, str], set[int]],
) -> None:
    """Apply one merge to sequence ``i``, keeping the pair counts right."""
    sequence = sequences[i]
    for pair in zip(sequence, sequence[1:], strict=False):
        pairs[pair] -= count
        if pairs[pair] <= 0:
            del pairs[pair]
        where[pair].discard(i)
    merged, j = [], 0
    while j < len(sequence):
        if j + 1 < len(sequence) and (sequence[j], sequence[j + 1]) == best:
            merged.append(best[0] + best[1])
            j += 2
        else:
            merged.append(sequence[j])
            j += 1
    sequences[i] = merged
    for pair in zip(merged, merged[1:], strict=False):
        pairs[pair] += count
        where[pair].add(i)


def _random_weights(
    rng: np.random.Generator, vocab_size: int, printable: list[bool]
) -> tuple[Any, Any, list[dict[str, Any]]]:
    def rand(*shape: int, std: float = 0.02) -> Any:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    embeddings = rand(vocab_size, _WIDTH, std=0.1)
    embeddings[:, :_CIRCUIT] = 0.0
    embeddings[:, _BIAS] = 1.0
    output = rand(vocab_size, _WIDTH, std=0.3)
    output[:, 1:_CIRCUIT] = 0.0
    output[:, _BIAS] = np.where(np.array(printable), _PRINTABLE_BIAS, -_PRINTABLE_BIAS)
    shapes = {"attn_q": (_WIDTH, _WIDTH), "attn_k": (_WIDTH, _WIDTH), "attn_v": (_WIDTH, _WIDTH),
              "attn_output": (_WIDTH, _WIDTH), "ffn_gate": (_FFN, _WIDTH), "ffn_up": (_FFN, _WIDTH),
              "ffn_down": (_WIDTH, _FFN)}  # fmt: skip
    layers = [{name: rand(*shape) for name, shape in shapes.items()} for _ in range(_LAYERS)]
    for layer in layers:  # keep the circuit's dimensions free of random writes
        layer["attn_output"][:_CIRCUIT, :] = 0.0
        layer["ffn_down"][:_CIRCUIT, :] = 0.0
    return embeddings, output, layers


def _set_circuit(specials: dict[str, int], embeddings: Any, output: Any, first: dict[str, Any]) -> None:
    """The hand-set weights behind the three behaviours of the module docstring."""
    eos, call, call_end = specials[EOS_TOKEN], specials["<tool_call>"], specials["</tool_call>"]
    tools, result, done = specials["<tools>"], specials["<tool_response>"], specials["Done."]
    for token, dimension in ((call, _IS_CALL), (call_end, _IS_CALL_END), (tools, _IS_TOOLS),
                             (result, _IS_RESULT), (done, _IS_DONE)):  # fmt: skip
        embeddings[token, dimension] = 3.0
    head_size = _WIDTH // _HEADS
    # Heads 0-2 attend to <tools>, <tool_response>, <tool_call> through the last rope pair of the
    # head (the slowest: with base 1e6 it turns < 0.03 rad over 4096 positions) and raise a flag.
    for head, (key, flag) in enumerate(
        ((_IS_TOOLS, _SEEN_TOOLS), (_IS_RESULT, _SEEN_RESULT), (_IS_CALL, _IN_CALL))
    ):
        qk = head * head_size + head_size - 2
        first["attn_q"][qk, :], first["attn_k"][qk, :] = 0.0, 0.0
        first["attn_q"][qk, _BIAS], first["attn_k"][qk, key] = 4.0, 1.5
        first["attn_v"][head * head_size, :] = 0.0
        first["attn_v"][head * head_size, key] = 1.0
        first["attn_output"][flag, head * head_size] = 0.5
    newline, quote = 10, 34  # the byte tokens "\n" and '"'
    preferences = [
        (call, _SEEN_TOOLS, 10.0), (call, _SEEN_RESULT, -20.0), (call, _IN_CALL, -20.0),  # open one call
        (quote, _IN_CALL, 6.0), (call_end, _IN_CALL, 5.0), (call_end, _SEEN_RESULT, -20.0),  # end it fast
        (newline, _IS_CALL, 60.0), (eos, _IS_CALL_END, 60.0),  # <tool_call> -> "\n", </tool_call> -> end
        (done, _SEEN_RESULT, 12.0), (eos, _IS_DONE, 60.0),  # after a result: "Done." and the end
    ]  # fmt: skip
    for token, dimension, weight in preferences:
        output[token, dimension] = weight


def _save(path: Path, vocab: _Vocab, embeddings: Any, output: Any, layers: list[dict[str, Any]]) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama-tools")
    writer.add_context_length(_TRAINED_CONTEXT)
    writer.add_embedding_length(_WIDTH)
    writer.add_block_count(_LAYERS)
    writer.add_feed_forward_length(_FFN)
    writer.add_head_count(_HEADS)
    writer.add_head_count_kv(_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(_WIDTH // _HEADS)
    writer.add_rope_freq_base(1e6)
    writer.add_vocab_size(len(vocab.tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _save_tokenizer(writer, vocab)
    writer.add_tensor("token_embd.weight", embeddings)
    for i, layer in enumerate(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(_WIDTH, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(_WIDTH, np.float32))
        for name, tensor in layer.items():
            writer.add_tensor(f"blk.{i}.{name}.weight", tensor)
    writer.add_tensor("output_norm.weight", np.ones(_WIDTH, np.float32))
    writer.add_tensor("output.weight", output.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _save_tokenizer(writer: gguf.GGUFWriter, vocab: _Vocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(vocab.specials["<|endoftext|>"])
    writer.add_eos_token_id(vocab.specials[EOS_TOKEN])
    writer.add_pad_token_id(vocab.specials["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
