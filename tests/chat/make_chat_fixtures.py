#!/usr/bin/env python3
"""Fixtures for the chat and sampling-defaults tests (issue 17), from the tiny models of fixture.tiny_models:

  tiny-llama-chat.gguf   tiny-llama.gguf plus a ChatML chat template (tokenizer.chat_template) and recommended
                         sampling settings (general.sampling.*, llama.cpp's keys), one of them out of range
  tiny-llama-chat-hf/    a copy of the tiny-llama-hf checkpoint plus a generation_config.json

    make_chat_fixtures.py FIXTURE_DIR
"""
import json
import os
import shutil
import sys

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

T = gguf.GGUFValueType
SAMPLING = {
    "general.sampling.temp": MetadataDetails(T.FLOAT32, 0.5),
    "general.sampling.top_k": MetadataDetails(T.INT32, 7),
    "general.sampling.top_p": MetadataDetails(T.FLOAT32, 0.75),
    "general.sampling.penalty_last_n": MetadataDetails(T.INT32, -1),
    "general.sampling.min_p": MetadataDetails(T.FLOAT32, 2.0),  # out of range: ignored, and said so
}
GENERATION_CONFIG = {"do_sample": True, "temperature": 0.6, "top_p": 0.85, "repetition_penalty": 1.2, "bos_token_id": 319}


def main():
    d = sys.argv[1]
    reader = gguf.GGUFReader(os.path.join(d, "tiny-llama.gguf"))
    out = os.path.join(d, "tiny-llama-chat.gguf")
    writer = gguf.GGUFWriter(out + ".part", arch="llama", endianess=reader.endianess)
    meta = dict(SAMPLING)
    meta[gguf.Keys.Tokenizer.CHAT_TEMPLATE] = MetadataDetails(T.STRING, CHATML)
    copy_with_new_metadata(reader, writer, meta, [])
    os.replace(out + ".part", out)

    hf, src = os.path.join(d, "tiny-llama-chat-hf"), os.path.abspath(os.path.join(d, "tiny-llama-hf"))
    os.makedirs(hf, exist_ok=True)
    for f in os.listdir(src):
        link = os.path.join(hf, f)
        shutil.copyfile(os.path.join(src, f), link)  # copies: winnow refuses shards that resolve outside the directory
    with open(os.path.join(hf, "generation_config.json"), "w") as f:
        json.dump(GENERATION_CONFIG, f, indent=2)
    print("wrote %s and %s" % (out, hf))


if __name__ == "__main__":
    main()
