"""The member decider: pure decisions and a rule-free ``evolve``, split by capability.

``decider.decide`` routes a command to its decision in ``profile``,
``credits``, ``sending``, ``responses``, ``scheduling``, ``follow_ups`` or
``enforcement``; ``rules`` holds what they share, ``ids`` mints InMail ids,
``state`` the aggregate and ``evolve``, ``errors`` one exception per broken rule.
Nothing here does I/O, reads a clock or mints an id.
"""
