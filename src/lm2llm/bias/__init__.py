"""Bias probes: how much more likely a model finds a sentence about one group than the same sentence
about another (template pairs), and how often it prefers the stereotypical sentence of a minimal pair
(CrowS-Pairs style). Both sets are ours, English and Korean, shipped with their construction rules."""
