"""What a model call costs: genai-prices' list prices, then the organisation's own overrides.

Owns price lookup and the Decimal arithmetic. An unknown model is `Unpriced` (data, never $0
and never an exception). It does not meter tokens or store anything.
"""

from tokenops.pricing.calc import Priced, PriceLine, Pricer, Unpriced
from tokenops.pricing.overrides import PriceOverride

__all__ = ["PriceLine", "PriceOverride", "Priced", "Pricer", "Unpriced"]
