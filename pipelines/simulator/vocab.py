"""Small word lists that make records look like people wrote them.

Kept deliberately short: enough variety for names, streets and review comments to be
language-consistent with the customer's country, not a naming corpus.
"""

from __future__ import annotations

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "pt", "zh"]

FIRST_NAMES = {
    "en": ["James", "Emma", "Liam", "Olivia", "Noah", "Ava", "Sean", "Grace", "Ethan", "Chloe"],
    "de": ["Lukas", "Anna", "Felix", "Marie", "Jonas", "Lea", "Paul", "Sophie", "Max", "Laura"],
    "fr": ["Louis", "Camille", "Hugo", "Chloé", "Lucas", "Léa", "Jules", "Manon", "Arthur", "Inès"],
    "es": ["Hugo", "Lucía", "Martín", "Sofía", "Pablo", "Martina", "Mateo", "Paula", "Leo", "Sara"],
    "it": [
        "Leonardo",
        "Giulia",
        "Francesco",
        "Sofia",
        "Lorenzo",
        "Aurora",
        "Matteo",
        "Chiara",
        "Marco",
        "Alice",
    ],
    "nl": ["Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Finn", "Sanne", "Bram", "Fleur"],
    "pl": [
        "Jakub",
        "Zuzanna",
        "Jan",
        "Julia",
        "Antoni",
        "Maja",
        "Szymon",
        "Lena",
        "Filip",
        "Zofia",
    ],
    "pt": [
        "João",
        "Maria",
        "Rodrigo",
        "Beatriz",
        "Tiago",
        "Ana",
        "Miguel",
        "Inês",
        "Diogo",
        "Rita",
    ],
    "zh": ["Wei", "Fang", "Jing", "Li", "Min", "Hui", "Lei", "Yan", "Jun", "Xin"],
}
LAST_NAMES = {
    "en": ["Smith", "Murphy", "Brown", "Walsh", "Wilson", "Kelly", "Taylor", "Byrne", "Clark"],
    "de": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"],
    "fr": ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"],
    "es": ["García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez"],
    "it": ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"],
    "nl": ["de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit"],
    "pl": ["Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski"],
    "pt": ["Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues"],
    "zh": ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao"],
}
STREETS = {
    "en": ["Main Street", "Church Road", "Park Avenue", "High Street", "Mill Lane", "Oak Drive"],
    "de": ["Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schulstraße", "Lindenallee", "Bergstraße"],
    "fr": [
        "Rue de la Paix",
        "Avenue Victor Hugo",
        "Rue des Lilas",
        "Boulevard Voltaire",
        "Rue du Moulin",
    ],
    "es": [
        "Calle Mayor",
        "Calle del Sol",
        "Avenida de la Constitución",
        "Calle Real",
        "Paseo del Prado",
    ],
    "it": ["Via Roma", "Via Garibaldi", "Corso Italia", "Via Dante", "Via Verdi"],
    "nl": ["Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsweg", "Prinsengracht"],
    "pl": ["ul. Polna", "ul. Lipowa", "ul. Kwiatowa", "ul. Ogrodowa", "ul. Długa"],
    "pt": ["Rua Augusta", "Avenida da Liberdade", "Rua das Flores", "Rua do Carmo"],
    "zh": ["Nanjing Road", "Huaihai Road", "Century Avenue", "Shennan Avenue"],
}
EMAIL_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "web.de",
    "orange.fr",
    "libero.it",
    "yahoo.com",
    "proton.me",
    "gmx.net",
    "wp.pl",
    "sapo.pt",
    "qq.com",
]
USER_AGENTS = {
    "web": [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/128.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0",
    ],
    "app": [
        "OrderTowerShop/5.12.0 (iPhone; iOS 17.6)",
        "OrderTowerShop/5.11.3 (Android 14; Pixel 8)",
        "OrderTowerShop/5.12.0 (Android 13; SM-A546B)",
    ],
    "marketplace": ["MarketplaceConnector/2.4 (+partner-api)"],
    "call_center": ["CallCenterDesk/1.9 (agent-console)"],
}

# (category, share of catalogue, median price EUR, price sigma, weight kg median, risk class)
CATEGORIES = [
    ("electronics", 0.14, 120.0, 0.9, 0.8, "high"),
    ("gift_cards", 0.02, 50.0, 0.5, 0.02, "high"),
    ("luxury", 0.04, 260.0, 0.7, 0.6, "high"),
    ("fashion", 0.22, 35.0, 0.6, 0.5, "medium"),
    ("home", 0.16, 28.0, 0.8, 1.6, "low"),
    ("beauty", 0.10, 18.0, 0.6, 0.3, "medium"),
    ("sports", 0.09, 40.0, 0.8, 1.2, "low"),
    ("toys", 0.08, 25.0, 0.7, 0.7, "low"),
    ("books", 0.08, 14.0, 0.4, 0.5, "low"),
    ("grocery", 0.07, 9.0, 0.5, 1.0, "low"),
]
SKU_ADJECTIVES = ["Classic", "Pro", "Eco", "Compact", "Premium", "Smart", "Essential", "Ultra"]
SKU_NOUNS = {
    "electronics": ["Headphones", "Smartwatch", "Tablet", "Speaker", "Camera", "Phone", "Charger"],
    "gift_cards": ["Gift Card"],
    "luxury": ["Handbag", "Watch", "Sunglasses", "Wallet", "Perfume"],
    "fashion": ["Jacket", "Sneakers", "Jeans", "Sweater", "Dress", "Scarf"],
    "home": ["Lamp", "Blender", "Pan Set", "Cushion", "Kettle", "Towel Set"],
    "beauty": ["Serum", "Shampoo", "Face Cream", "Lipstick"],
    "sports": ["Yoga Mat", "Dumbbells", "Running Shoes", "Bike Light", "Tent"],
    "toys": ["Puzzle", "Building Set", "Plush Bear", "Board Game"],
    "books": ["Novel", "Cookbook", "Travel Guide", "Notebook"],
    "grocery": ["Coffee Beans", "Olive Oil", "Tea Box", "Chocolate"],
}

# review/contact comments per language: key -> list of texts
COMMENTS = {
    "good": {
        "en": ["Great, arrived quickly.", "Exactly as described.", "Very happy, thanks!"],
        "de": ["Schnelle Lieferung, alles gut.", "Wie beschrieben, danke!", "Sehr zufrieden."],
        "fr": ["Livraison rapide, parfait.", "Conforme à la description.", "Très satisfait."],
        "es": ["Llegó rápido, perfecto.", "Tal como se describe.", "Muy contento."],
        "it": ["Consegna veloce, ottimo.", "Come descritto.", "Molto soddisfatto."],
        "nl": ["Snel geleverd, top.", "Zoals beschreven.", "Heel tevreden."],
        "pl": ["Szybka dostawa, super.", "Zgodnie z opisem.", "Bardzo zadowolony."],
        "pt": ["Chegou rápido, ótimo.", "Conforme descrito.", "Muito satisfeito."],
        "zh": ["发货很快，很好。", "与描述一致。", "非常满意。"],
    },
    "late": {
        "en": ["Arrived days after the promised date.", "Far too slow."],
        "de": ["Kam Tage zu spät.", "Lieferung viel zu langsam."],
        "fr": ["Arrivé avec plusieurs jours de retard.", "Beaucoup trop lent."],
        "es": ["Llegó con días de retraso.", "Demasiado lento."],
        "it": ["Arrivato con giorni di ritardo.", "Troppo lento."],
        "nl": ["Dagen te laat geleverd.", "Veel te traag."],
        "pl": ["Przyszło kilka dni po terminie.", "Zdecydowanie za wolno."],
        "pt": ["Chegou dias depois do prometido.", "Demasiado lento."],
        "zh": ["比承诺晚了好几天。", "太慢了。"],
    },
    "damaged": {
        "en": ["The box was crushed and the item is broken."],
        "de": ["Karton zerdrückt, Artikel beschädigt."],
        "fr": ["Colis écrasé, article cassé."],
        "es": ["La caja llegó aplastada y el artículo roto."],
        "it": ["Pacco schiacciato, articolo rotto."],
        "nl": ["Doos kapot, artikel beschadigd."],
        "pl": ["Paczka zgnieciona, produkt uszkodzony."],
        "pt": ["Caixa amassada e artigo partido."],
        "zh": ["包装压坏了，商品破损。"],
    },
    "wrong_item": {
        "en": ["I received a different item."],
        "de": ["Falscher Artikel geliefert."],
        "fr": ["J'ai reçu un autre article."],
        "es": ["Recibí un artículo equivocado."],
        "it": ["Ho ricevuto un articolo sbagliato."],
        "nl": ["Verkeerd artikel ontvangen."],
        "pl": ["Otrzymałem inny produkt."],
        "pt": ["Recebi o artigo errado."],
        "zh": ["收到的商品不对。"],
    },
    "wismo": {
        "en": ["Where is my order?"],
        "de": ["Wo bleibt meine Bestellung?"],
        "fr": ["Où est ma commande ?"],
        "es": ["¿Dónde está mi pedido?"],
        "it": ["Dov'è il mio ordine?"],
        "nl": ["Waar blijft mijn bestelling?"],
        "pl": ["Gdzie jest moje zamówienie?"],
        "pt": ["Onde está a minha encomenda?"],
        "zh": ["我的订单在哪里？"],
    },
    "other": {
        "en": ["Can I change the delivery address?"],
        "de": ["Kann ich die Adresse ändern?"],
        "fr": ["Puis-je changer l'adresse ?"],
        "es": ["¿Puedo cambiar la dirección?"],
        "it": ["Posso cambiare indirizzo?"],
        "nl": ["Kan ik het adres wijzigen?"],
        "pl": ["Czy mogę zmienić adres?"],
        "pt": ["Posso alterar a morada?"],
        "zh": ["可以修改地址吗？"],
    },
    "followup": {
        "en": ["Please call me back."],
        "de": ["Bitte um Rückruf."],
        "fr": ["Merci de me rappeler."],
        "es": ["Por favor, llámenme."],
        "it": ["Per favore richiamatemi."],
        "nl": ["Graag terugbellen."],
        "pl": ["Proszę o kontakt."],
        "pt": ["Por favor liguem-me."],
        "zh": ["请回电。"],
    },
}
