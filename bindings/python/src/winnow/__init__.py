"""winnow from Python.

    import winnow
    model = winnow.Model("SmolLM2-135M-Instruct.Q4_1.gguf")
    session = model.session()
    print(session.generate("The capital of France is", max_tokens=16).text)
    for piece in winnow.stream(session, model.apply_chat_template("Hi!"), max_tokens=32):
        print(piece, end="", flush=True)
"""
import queue
import threading

from ._winnow import Error, GenerateResult, Model, Session, quantize

__all__ = ["Error", "GenerateResult", "Model", "Session", "quantize", "stream"]


def stream(session, prompt, **options):
    """Yields the generated text piece by piece while the session generates on a worker thread (the GIL is released
    while the model runs). The GenerateResult is available as the generator's return value (StopIteration.value)."""
    pieces = queue.Queue()
    done = object()
    outcome = {}

    def run():
        try:
            outcome["result"] = session.generate(prompt, on_piece=lambda p: pieces.put(p) or True, **options)
        except BaseException as e:  # re-raised in the consumer
            outcome["error"] = e
        finally:
            pieces.put(done)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while True:
        p = pieces.get()
        if p is done:
            break
        yield p
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
