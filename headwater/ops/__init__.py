"""Operating a running pipeline: who reads what (``groups``), how far behind they are (``lag``), and
what that means (``status``, Burrow's rules)."""
