"""The drop-in OpenAI/Anthropic endpoint: meters, prices and attributes every call it forwards.

Owns the wire formats (`openai.py`, `anthropic.py`), streaming relay, upstream selection,
virtual keys and the provider-format errors. Pricing, metering and storage are borrowed from
`tokenops.pricing`, `tokenops.meter` and `tokenops.store`.
"""
