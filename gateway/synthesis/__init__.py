"""Synthesis: the one path from a request to released, marked, labelled audio.

`service.SynthesisService` is what every synthesis route calls (`synthesize` for a whole file,
`open_stream` for chunks); `encoding` turns released marked audio into bytes; `http` turns a
release or a stream into an HTTP response (headers, disconnects).
"""
