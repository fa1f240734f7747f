"""feedback_flywheel: batch feedback processing for continuous model learning.

The warehouse (dbt models under ``models/``) does the heavy lifting; this package holds the code
the flows (``flows/``) and the ``flywheel`` command call, one folder per capability. Imports flow
one way: cli → flows → capabilities → warehouse → config (see the README's Architecture section).
"""

__version__ = "0.1.0"
