"""The Python module against the CLI and itself: 16 greedy tokens from the default model equal the CLI's ids; logits
come back as NumPy arrays without a copy; streaming gives the same text; errors are winnow.Error."""
import json
import os
import subprocess

import numpy as np
import pytest

import winnow

MODEL = os.environ.get("WINNOW_TEST_MODEL", "")
CLI = os.environ.get("WINNOW_CLI", "")
TINY = os.environ.get("WINNOW_TINY_MODEL", "")
PROMPT = "The capital of France is"


def need(path, what):
    if path and os.path.exists(path):
        return path
    if os.environ.get("WINNOW_REQUIRE_MODELS") == "1":
        pytest.fail("%s missing: %r" % (what, path))
    pytest.skip("%s not available" % what)


def test_greedy_ids_equal_the_cli():
    model, cli = need(MODEL, "default model"), need(CLI, "winnow CLI")
    out = subprocess.run([cli, "generate", "-m", model, "-p", PROMPT, "-n", "16", "--temp", "0", "--ignore-eos", "--json"], capture_output=True, text=True, check=True)
    cli_ids = json.loads(out.stdout)["output_ids"]
    r = winnow.Model(model).session(n_ctx=256).generate(PROMPT, max_tokens=16, ignore_eos=True)
    assert len(cli_ids) == 16
    assert r.output_ids == cli_ids
    assert r.stop_reason == "max_tokens"
    assert r.stats["head_exact_steps"] == 16


def test_logits_are_numpy_without_a_copy():
    m = winnow.Model(need(TINY, "tiny model"))
    s = m.session(n_ctx=64)
    ids = [1, 2, 3, 4]
    last = s.logits(ids)
    assert isinstance(last, np.ndarray) and last.dtype == np.float32 and last.shape == (m.info["n_vocab"],)
    assert not last.flags["OWNDATA"] and last.base is not None  # the array views the C++ buffer
    s.reset()
    every = s.logits(ids, all=True)
    assert every.shape == (4, m.info["n_vocab"])
    np.testing.assert_allclose(every[-1], last, rtol=1e-5, atol=1e-5)
    assert s.n_past == 4
    assert s.hidden().shape == (m.info["n_embd"],)


def test_stream_gives_the_generated_text():
    m = winnow.Model(need(TINY, "tiny model"))
    s = m.session(n_ctx=64)
    pieces = []
    gen = winnow.stream(s, [1, 2, 3], max_tokens=10, ignore_eos=True)
    try:
        while True:
            pieces.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert "".join(pieces) == result.text
    assert len(result.output_ids) == 10


def test_tokenize_roundtrip_and_adaptive_stats():
    m = winnow.Model(need(TINY, "tiny model"))
    ids = m.tokenize("the other sea", special=False)
    assert m.detokenize(ids).endswith("the other sea")
    r = m.session(n_ctx=64).generate([1, 2, 3], max_tokens=6, ignore_eos=True, head="adaptive")
    assert r.stats["head_adaptive_steps"] == 6 and r.stats["head_samples"] > 0
    assert r.stats["head_factors"] == "theory constants (uncalibrated)"
    # the head with an exact prefix of every column and 4 cluster-centred rows: each step's warm-up reads the n arms'
    # d columns and charges the centroid logits d each, and nothing more; a prefix past the head's width is refused
    n, d = m.info["n_vocab"], m.info["n_embd"]
    cut = winnow.Model(TINY, adaptive_exact_prefix=d, adaptive_row_clusters=4)
    r = cut.session(n_ctx=64).generate([1, 2, 3], max_tokens=6, ignore_eos=True, head="adaptive")
    assert r.stats["head_adaptive_steps"] == 6 and r.stats["head_samples"] == 6 * (n + 4) * d
    with pytest.raises(winnow.Error, match="exact prefix must be 0 to"):
        winnow.Model(TINY, adaptive_exact_prefix=1 << 20)
    # a stored basis is read and checked at load: a model file is not one
    with pytest.raises(winnow.Error, match="not a winnow head basis"):
        winnow.Model(TINY, adaptive_basis=TINY)


def test_errors_are_winnow_errors():
    with pytest.raises(winnow.Error, match="/nonexistent/model.gguf"):
        winnow.Model("/nonexistent/model.gguf")
    m = winnow.Model(need(TINY, "tiny model"))
    with pytest.raises(winnow.Error, match="top-p"):
        m.session().generate([1], top_p=0.0)
    with pytest.raises(winnow.Error):
        m.session(n_ctx=4).generate([1, 2, 3, 4, 5])


def test_sparse_attention_is_a_session_option():
    m = winnow.Model(need(TINY, "tiny model"))
    with pytest.raises(winnow.Error, match="/nonexistent/pattern.json"):
        m.session(n_ctx=32, sparse_pattern="/nonexistent/pattern.json", sparse_select_blocks=4)
    with pytest.raises(winnow.Error, match="sparse_select_blocks must be >= 0"):
        m.session(n_ctx=32, sparse_pattern="/nonexistent/pattern.json", sparse_select_blocks=-1)


def test_chat_template_takes_a_conversation():
    m = winnow.Model(need(MODEL, "default model"))
    # SmolLM2's own template: its default system prompt when the conversation has none
    assert m.apply_chat_template("Hi") == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    expected = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                "<|im_start|>user\nBye<|im_end|>\n")
    assert m.apply_chat_template(conversation, add_generation_prompt=False) == expected
    assert m.apply_chat_template(conversation) == expected + "<|im_start|>assistant\n"
    with pytest.raises(winnow.Error, match="message 1 must be a dict"):
        m.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user"}])
    with pytest.raises(winnow.Error, match="carries none"):
        winnow.Model(need(TINY, "tiny model")).apply_chat_template([{"role": "user", "content": "a"}])
    # more template variables, a dict or a JSON text, checked at load (SmolLM2's template reads neither of these)
    with pytest.raises(winnow.Error, match="must be a JSON object"):
        winnow.Model(need(TINY, "tiny model"), chat_template_kwargs="[1]")
    with pytest.raises(winnow.Error, match="'messages' is set by the renderer itself"):
        winnow.Model(need(TINY, "tiny model"), chat_template_kwargs={"messages": []})
    assert winnow.Model(need(MODEL, "default model"), chat_template_kwargs={"enable_thinking": False}).apply_chat_template("Hi") == \
        m.apply_chat_template("Hi")


def test_quantize_writes_a_model_that_loads(tmp_path):
    source = need(TINY, "tiny model")
    out = str(tmp_path / "q8.gguf")
    r = winnow.quantize(source, out, "q8_0")
    assert r["quantized"] > 0 and r["bytes_out"] < r["bytes_in"]
    assert len(winnow.Model(out).session().generate([1, 2, 3], max_tokens=3, ignore_eos=True).output_ids) == 3
    with pytest.raises(winnow.Error, match="unknown quantization preset 'iq2_xxs'"):
        winnow.quantize(source, str(tmp_path / "never.gguf"), "iq2_xxs")
    assert not os.path.exists(tmp_path / "never.gguf")
