"""What-if replay (CONTRACT section 10): the recorded history decided again under another policy.

``engine`` is the fold (recorded and what-if states side by side, decided by the
service's own ``decide``), ``commands`` turns a recorded decision back into its
command, ``report`` compares the two. Pure: ``inmail.ops.whatif`` reads the stream.
"""

from services.whatif.engine import WhatIf

__all__ = ["WhatIf"]
