#!/usr/bin/env python3
"""Tokenizes text for `hyla data prepare --tokenizer FILE`, with Hugging Face's `tokenizers`
package, and hands hyla the ids and the vocabulary (each token's bytes). The tokenizer is a
tokenizer.json of byte-level BPE (GPT-2's kind, scripts/train-bpe.py's): every byte
sequence has a tokenization that decodes back to it, byte for byte, which hyla checks.

Reads documents on standard input, little-endian:
  b"hylatxt1"
  then each document: u64 k, k bytes (its text), until the input ends.
Each document is tokenized on its own, so that no token spans two. Writes on standard output:
  b"hylatok1"
  u32 k, k bytes         the tokenizer's kind ("byte-level-bpe"), hyla's `tokenizer` attribute
  u32 n                  the vocabulary's size (the highest id + 1)
  n times: u32 k, k bytes   token i's bytes
  then for each document, in order: blocks of ids, u32 k (> 0) and k u32 ids, then an empty
  block (k = 0) that ends the document.
Errors go to standard error with exit status 1 (3 when the package is missing).
Usage: tokenize-text.py TOKENIZER.json < DOCUMENTS > STREAM"""
import json
import re
import struct
import sys

KIND = "byte-level-bpe"
BATCH_CHARS = 1 << 20  # text encoded per encode_batch call: bounds the memory its results take


def die(msg, status=1):
    sys.stderr.write("tokenize-text.py: %s\n" % msg)
    sys.exit(status)


def byte_level_chars():
    """GPT-2's byte-level alphabet: byte b is written as the character chars[b]. Printable
    Latin-1 bytes stand for themselves; the others take code points from 256 up, in byte order."""
    keep = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    chars, extra = {}, 256
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(extra)
            extra += 1
    return chars


def components(node):
    """Every component of a pre-tokenizer or decoder, through Sequences."""
    if not node:
        return []
    inner = node.get("pretokenizers") or node.get("decoders")
    if node.get("type") == "Sequence" and inner:
        return [c for n in inner for c in components(n)]
    return [node]


def check_byte_level(spec, path):
    """The tokenizer must be byte-level BPE, whose tokens give a text back byte for byte (hyla
    checks that they do: a normalizer, NFC say, may change a text or not)."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        die("%s: a %s model; hyla takes byte-level BPE" % (path, model.get("type")))
    pre = [c for c in components(spec.get("pre_tokenizer")) if c.get("type") == "ByteLevel"]
    if not pre:
        die("%s: no ByteLevel pre-tokenizer: not byte-level BPE, whose tokens hyla decodes "
            "byte for byte" % path)
    if any(c.get("add_prefix_space") for c in pre):
        die("%s: its ByteLevel pre-tokenizer adds a space before the text (add_prefix_space), "
            "which would not decode to the text" % path)


def vocabulary(tok):
    """Each id's bytes: a BPE token's characters mapped back to bytes; an added (special) token's
    content as UTF-8. Ids no token has (holes) get no bytes."""
    to_byte = {c: b for b, c in byte_level_chars().items()}
    added = {i: t.content for i, t in tok.get_added_tokens_decoder().items()}
    ids = tok.get_vocab(with_added_tokens=False)
    n = max(list(ids.values()) + list(added.keys())) + 1
    table = [b""] * n
    for token, i in ids.items():
        try:
            table[i] = bytes(to_byte[c] for c in token)
        except KeyError as e:
            die("token %d (%r) has the character %r, outside the byte-level alphabet" %
                (i, token, e.args[0]))
    for i, content in added.items():
        table[i] = content.encode("utf-8")
    return table


def pieces(text):
    """The text cut where tokenizing the parts gives the whole text's tokens: after a newline
    that a non-space follows (byte-level BPE's pre-tokenizers split there), and around bytes
    that are not UTF-8 (surrogate escapes), which become their byte's own token."""
    for part in re.split(r"([\udc80-\udcff]+)", text):
        if part and "\udc80" <= part[0] <= "\udcff":
            yield part, True
        elif part:
            for line in re.split(r"(?<=\n)(?=\S)", part):
                if line:
                    yield line, False


def write_ids(out, ids):
    if ids:
        out.write(struct.pack("<I", len(ids)))
        out.write(struct.pack("<%dI" % len(ids), *ids))


def documents(data):
    """The documents of hyla's input stream, as text (bytes that are not UTF-8 as surrogate
    escapes)."""
    if data[:8] != b"hylatxt1":
        die("standard input is not hyla's stream of documents (b'hylatxt1' first)")
    at = 8
    while at < len(data):
        if at + 8 > len(data):
            die("a document's length is cut short at byte %d of the input" % at)
        (k,) = struct.unpack_from("<Q", data, at)
        if at + 8 + k > len(data):
            die("a document of %d bytes is cut short at byte %d of the input" % (k, at))
        yield data[at + 8:at + 8 + k].decode("utf-8", "surrogateescape")
        at += 8 + k


def tokenize(tok, byte_token, path, docs, out):
    """Each document's ids, then the empty block that ends it. The pieces of many documents are
    encoded together (encode_batch) for speed; `items` keeps their order: ("text", piece),
    ("ids", ids of bytes that are not UTF-8) and ("end",) where a document ends."""
    items, chars = [], 0

    def flush():
        texts = [item[1] for item in items if item[0] == "text"]
        encoded = iter(tok.encode_batch(texts, add_special_tokens=False))
        for item in items:
            if item[0] == "text":
                write_ids(out, next(encoded).ids)
            elif item[0] == "ids":
                write_ids(out, item[1])
            else:
                out.write(struct.pack("<I", 0))
        items.clear()

    for doc in docs:
        for part, raw in pieces(doc):
            if raw:  # bytes that are not UTF-8: each its byte's token
                ids = []
                for c in part:
                    b = ord(c) - 0xDC00
                    if byte_token[b] is None:
                        die("%s has no token for the byte 0x%02x" % (path, b))
                    ids.append(byte_token[b])
                items.append(("ids", ids))
            else:
                items.append(("text", part))
                chars += len(part)
            if chars >= BATCH_CHARS:
                flush()
                chars = 0
        items.append(("end",))
    flush()


def main():
    if len(sys.argv) != 2:
        die("usage: tokenize-text.py TOKENIZER.json < DOCUMENTS > STREAM")
    path = sys.argv[1]
    try:
        from tokenizers import Tokenizer
    except ImportError:
        die("the Python package 'tokenizers' is missing for %s: scripts/setup.sh installs it "
            "(pip install tokenizers)" % sys.executable, 3)
    if path.endswith(".model"):
        die("%s: a SentencePiece model? hyla takes a tokenizer.json of byte-level BPE" % path)
    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:  # the package's own error type varies between versions
        die("%s: not a tokenizer the tokenizers package reads: %s" % (path, e))
    check_byte_level(json.loads(tok.to_str()), path)
    table = vocabulary(tok)
    byte_token = {b: tok.token_to_id(c) for b, c in byte_level_chars().items()}
    data = sys.stdin.buffer.read()

    out = sys.stdout.buffer
    out.write(b"hylatok1")
    out.write(struct.pack("<I", len(KIND)) + KIND.encode())
    out.write(struct.pack("<I", len(table)))
    for t in table:
        out.write(struct.pack("<I", len(t)) + t)
    tokenize(tok, byte_token, path, documents(data), out)
    out.flush()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C reaches hyla too, which says what stopped
        sys.exit(130)
    except BrokenPipeError:  # hyla stopped reading: it says why
        sys.exit(1)
