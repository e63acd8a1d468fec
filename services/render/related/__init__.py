"""Related articles: an incremental BM25 index in Redis with near-duplicate collapsing.

The render worker indexes each article as it is published (`RelatedIndex.index`), removes
it when withdrawn (`remove`) and asks for a page's list (`query`). `pressroom reindex`
rebuilds the index from the article store; `pressroom related-eval` measures its quality.
"""

from services.render.related.document import RelatedDoc, related_doc_from_article
from services.render.related.engine import RelatedIndex

__all__ = ["RelatedDoc", "RelatedIndex", "related_doc_from_article"]
