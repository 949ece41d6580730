"""The protected-speaker list: admin entries, exceptions and reviews; the owner's opt-out."""
